"""Generated protobuf code must equal what the pinned toolchain produces from the .proto sources."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GEN_PROTOS = REPO_ROOT / "scripts" / "gen_protos.py"
PROTO_ROOT = REPO_ROOT / "proto"
EVENTS_PB2 = "sonobridge/api/events/v1/events_pb2.py"
EVENTS_PROTO = "sonobridge/api/events/v1/events.proto"
WIRE_LOCK = "wire_numbers.lock.json"


def run_gen_protos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GEN_PROTOS), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def copy_proto_tree(tmp_path: Path) -> Path:
    root = tmp_path / "proto"
    shutil.copytree(
        PROTO_ROOT / "sonobridge",
        root / "sonobridge",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy2(PROTO_ROOT / WIRE_LOCK, root / WIRE_LOCK)
    return root


def edit_proto(root: Path, source: str, old: str, new: str) -> None:
    path = root / source
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_committed_generated_code_matches_a_fresh_generation() -> None:
    result = run_gen_protos("--check")

    assert result.returncode == 0, result.stderr


def test_check_names_a_hand_edited_generated_file(tmp_path: Path) -> None:
    root = copy_proto_tree(tmp_path)
    with (root / EVENTS_PB2).open("a", encoding="utf-8") as generated:
        generated.write("# edited by hand\n")

    result = run_gen_protos("--check", "--proto-root", str(root))

    assert result.returncode == 1
    assert f"differs: {EVENTS_PB2}" in result.stderr
    assert "ingest_pb2.py" not in result.stderr


def test_check_names_a_proto_change_that_was_not_regenerated(tmp_path: Path) -> None:
    root = copy_proto_tree(tmp_path)
    source = root / "sonobridge/api/ingest/v1/ingest.proto"
    source.write_text(
        source.read_text(encoding="utf-8") + "\nmessage Added {\n  string name = 1;\n}\n",
        encoding="utf-8",
    )

    result = run_gen_protos("--check", "--proto-root", str(root))

    assert result.returncode == 1
    assert "differs: sonobridge/api/ingest/v1/ingest_pb2.py" in result.stderr
    assert "differs: sonobridge/api/ingest/v1/ingest_pb2.pyi" in result.stderr
    assert f"differs: {WIRE_LOCK} (new numbers not recorded)" in result.stderr


def test_check_names_generated_code_left_behind_by_a_deleted_proto(tmp_path: Path) -> None:
    root = copy_proto_tree(tmp_path)
    (root / "sonobridge/api/ingest/v1/old_pb2.py").write_text("# left over\n", encoding="utf-8")

    result = run_gen_protos("--check", "--proto-root", str(root))

    assert result.returncode == 1
    assert "stale (no .proto source): sonobridge/api/ingest/v1/old_pb2.py" in result.stderr


def test_regeneration_repairs_drift_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    root = copy_proto_tree(tmp_path)
    (root / EVENTS_PB2).write_text("# clobbered\n", encoding="utf-8")
    (root / "sonobridge/api/ingest/v1/old_pb2_grpc.py").write_text("# left over\n")

    first = run_gen_protos("--proto-root", str(root))
    second = run_gen_protos("--proto-root", str(root))
    check = run_gen_protos("--check", "--proto-root", str(root))

    assert first.returncode == 0, first.stderr
    assert f"wrote: {EVENTS_PB2}" in first.stdout
    assert "removed stale: sonobridge/api/ingest/v1/old_pb2_grpc.py" in first.stdout
    assert (root / EVENTS_PB2).read_bytes() == (PROTO_ROOT / EVENTS_PB2).read_bytes()
    assert second.stdout.strip().endswith(f"0 file(s) changed under {root}")
    assert check.returncode == 0, check.stderr


def test_a_package_that_does_not_match_its_directory_is_rejected(tmp_path: Path) -> None:
    root = copy_proto_tree(tmp_path)
    wrong = root / "sonobridge/api/ingest/v1/wrong.proto"
    wrong.write_text('syntax = "proto3";\npackage sonobridge.ingest;\n', encoding="utf-8")

    result = run_gen_protos("--check", "--proto-root", str(root))

    assert result.returncode == 2
    assert "package sonobridge.ingest does not match its directory" in result.stderr
    assert "package sonobridge.api.ingest.v1;" in result.stderr


def test_a_renumbered_field_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    root = copy_proto_tree(tmp_path)
    before = (root / EVENTS_PB2).read_bytes()
    edit_proto(root, EVENTS_PROTO, "string manifest_sha256 = 8;", "string manifest_sha256 = 9;")

    check = run_gen_protos("--check", "--proto-root", str(root))
    regenerate = run_gen_protos("--proto-root", str(root))

    assert check.returncode == 1
    expected = "sonobridge.api.events.v1.ExamCompleted.manifest_sha256: renumbered 8 -> 9"
    assert f"wire break: {expected}" in check.stderr
    assert regenerate.returncode == 2
    assert expected in regenerate.stderr
    assert (root / EVENTS_PB2).read_bytes() == before


def test_a_renumbered_enum_value_is_refused(tmp_path: Path) -> None:
    root = copy_proto_tree(tmp_path)
    edit_proto(root, EVENTS_PROTO, "EXAM_TYPE_OTHER = 8;", "EXAM_TYPE_OTHER = 9;")

    result = run_gen_protos("--check", "--proto-root", str(root))

    assert result.returncode == 1
    assert "sonobridge.api.events.v1.ExamType.EXAM_TYPE_OTHER: renumbered 8 -> 9" in result.stderr


def test_a_deleted_field_must_be_reserved(tmp_path: Path) -> None:
    root = copy_proto_tree(tmp_path)
    edit_proto(root, EVENTS_PROTO, "  string note = 11;\n", "")

    unreserved = run_gen_protos("--proto-root", str(root))
    edit_proto(
        root,
        EVENTS_PROTO,
        "  string institution_id = 12;\n}",
        '  string institution_id = 12;\n  reserved 11;\n  reserved "note";\n}',
    )
    reserved = run_gen_protos("--proto-root", str(root))
    check = run_gen_protos("--check", "--proto-root", str(root))

    assert unreserved.returncode == 2
    assert 'TicketUpdated.note = 11: removed without `reserved 11;` and `reserved "note";`' in (
        unreserved.stderr
    )
    assert reserved.returncode == 0, reserved.stderr
    assert check.returncode == 0, check.stderr
