"""Conditional GET: strong ETags from the bytes sent, weak If-None-Match matching, bare 304s."""

from __future__ import annotations

from sonobridge.common.conditional import conditional, entity_tag, matches, polled


def test_the_tag_is_strong_and_follows_the_exact_bytes() -> None:
    tag = entity_tag(b'{"a":1}')
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")
    assert tag == entity_tag(b'{"a":1}')
    assert tag != entity_tag(b'{"a": 1}')


def test_if_none_match_compares_weakly_and_accepts_lists_and_star() -> None:
    tag = entity_tag(b"x")
    assert matches(tag, tag)
    assert matches(f"W/{tag}", tag)
    assert matches(f'"other", {tag}', tag)
    assert matches('"other",W/' + tag, tag)
    assert matches("*", tag)
    assert not matches('"other"', tag)
    assert not matches(None, tag)
    assert not matches("", tag)


def test_a_comma_inside_a_tag_does_not_split_it() -> None:
    assert matches('"a,b", "c"', '"a,b"')
    assert not matches('"a,b"', '"a"')


def test_a_current_copy_gets_a_bodiless_304_with_the_tag_and_cache_control() -> None:
    first = polled({"reads": [1, 2]}, None)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    again = polled({"reads": [1, 2]}, etag)
    assert again.status_code == 304
    assert again.body == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "private, no-cache"


def test_a_changed_representation_is_sent_in_full() -> None:
    etag = polled({"n": 1}, None).headers["etag"]
    changed = polled({"n": 2}, etag)
    assert changed.status_code == 200 and changed.body == b'{"n":2}'


def test_other_media_types_and_extra_headers_travel_with_the_answer() -> None:
    sent = conditional(b"\x00\x01", None, media_type="application/dicom", headers={"X-A": "1"})
    assert sent.headers["content-type"] == "application/dicom"
    assert sent.headers["x-a"] == "1"
    assert sent.headers["etag"] == entity_tag(b"\x00\x01")
