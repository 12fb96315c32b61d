"""Passwords live hashed in the consortium file, set by `sonobridge users set-password`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sonobridge.node.cli import main
from sonobridge.node.consortium import demo_consortium, load
from sonobridge.node.identity.accounts import LoginThrottle, PeopleDirectory


def _consortium_file(tmp_path: Path) -> Path:
    path = tmp_path / "consortium.json"
    path.write_text(demo_consortium().to_json(), encoding="utf-8")
    return path


def test_set_password_reads_stdin_and_stores_only_an_argon2_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _consortium_file(tmp_path)
    people = PeopleDirectory(path)
    assert people.authenticate("dr-wang", "thyroid-nodules-9") is None
    monkeypatch.setattr("sys.stdin", io.StringIO("thyroid-nodules-9\n"))
    main(["--data-dir", str(tmp_path), "users", "set-password", "dr-wang"])
    assert "password set for dr-wang" in capsys.readouterr().out
    stored = load(path).person("dr-wang").password_hash
    assert stored is not None and stored.startswith("$argon2id$")
    assert "thyroid-nodules-9" not in path.read_text(encoding="utf-8")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # The running provider re-reads the file: the new password works at once.
    assert people.authenticate("dr-wang", "thyroid-nodules-9") is not None
    assert people.authenticate("dr-wang", "thyroid-nodules-8") is None
    assert people.authenticate("dr-zhang", "thyroid-nodules-9") is None


@pytest.mark.parametrize(
    ("user", "password", "says"),
    [("nobody", "long-enough-pass", "no person"), ("dr-wang", "short", "at least")],
)
def test_set_password_refuses_unknown_people_and_short_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: str, password: str, says: str
) -> None:
    path = _consortium_file(tmp_path)
    before = path.read_text(encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    with pytest.raises(SystemExit, match=says):
        main(["--data-dir", str(tmp_path), "users", "set-password", user])
    assert path.read_text(encoding="utf-8") == before


def test_nobody_has_a_password_until_one_is_set() -> None:
    raw = json.loads(demo_consortium().to_json())
    assert {p["password_hash"] for p in raw["people"]} == {None}


def test_the_throttle_locks_an_account_then_forgets_after_the_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=3, window_seconds=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("user:a", "address:x") == 0
        throttle.failed("user:a", "address:x")
    assert throttle.retry_after("user:a") == 60
    assert throttle.retry_after("user:b", "address:x") == 60
    assert throttle.retry_after("user:b", "address:y") == 0
    now[0] = 61.0
    assert throttle.retry_after("user:a", "address:x") == 0
