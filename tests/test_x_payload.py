"""The X payload parser: a Post, or a PayloadError that says why; never anything else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels.x_payload import parse_stream_line, parse_timeline_page
from bot.errors import PayloadError
from tests.factories import line
from tests.factories import x_payload as payload


def test_full_payload_becomes_a_post_with_every_field() -> None:
    p = payload(
        geo={"place_id": "pl1", "coordinates": {"type": "Point", "coordinates": [-0.1426, 51.539]}},
        referenced_tweets=[{"type": "replied_to", "id": "1849999999999999999"}],
    )
    post = parse_stream_line(line(p))
    assert post.uid == "x:1850000000000000001"
    assert post.author.handle == "ann_k" and post.author.location == "Camden, London"
    assert post.coordinates == (51.539, -0.1426)  # GeoJSON is [lon, lat]
    assert post.place is not None and post.place.bbox == (-0.15, 51.53, -0.13, 51.55)
    assert post.in_reply_to == "1849999999999999999"
    assert post.mentions == ("NorthbankHelp",)
    assert post.created_at.isoformat() == "2026-11-22T09:00:00+00:00"
    assert post.raw == line(p)  # the exact bytes, kept for audit


def test_unknown_fields_are_ignored_and_kept_in_raw() -> None:
    p = payload(edit_history_tweet_ids=["1"], brand_new_field={"x": 1})
    p["future_top_level"] = True
    post = parse_stream_line(line(p))
    assert json.loads(post.raw)["future_top_level"] is True


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (line(payload())[:-20], "invalid or truncated JSON"),
        (b'{"matching_rules": []}', "no 'data' object"),
        (b'{"errors": [{"title": "operational-disconnect"}]}', "stream error message"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"data": "text"}', "'data' must be an object"),
        (line(payload(text="")), "empty text"),
        (line(payload(text="a" * 25_001)), "25001 characters is over the 25000 limit"),
        ('{"data": {"text": "caf\xe9"}}'.encode("latin-1"), "not UTF-8: invalid byte at offset"),
        (line(payload(id="12abc")), "data.id missing or not a numeric id"),
        (line({"data": {"id": "1", "text": "hi"}}), "data.author_id missing"),
    ],
)
def test_bad_payloads_name_what_is_wrong(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_stream_line(raw)


@pytest.mark.parametrize(
    "text",
    [
        "🏦😡😡 @NorthbankHelp",
        "الطابور طويل جدا في فرع كامدن @NorthbankHelp",  # right-to-left
        "queue\u200b at\u200d Camden\ufeff @NorthbankHelp",  # zero-width characters
        "a" * 25_000,
    ],
)
def test_unusual_but_valid_text_is_kept_exactly(text: str) -> None:
    assert parse_stream_line(line(payload(text=text))).text == text


@pytest.mark.parametrize(
    "geo",
    [
        {"coordinates": {"type": "Point", "coordinates": [-0.14, 91.0]}},  # lat out of range
        {"coordinates": {"type": "Point", "coordinates": [200.0, 51.5]}},
        {"coordinates": {"type": "Point", "coordinates": ["x", None]}},
        {"coordinates": "51.5,-0.1"},
    ],
)
def test_invalid_coordinates_are_dropped_not_the_post(geo: dict[str, Any]) -> None:
    post = parse_stream_line(line(payload(geo=geo)))
    assert post.coordinates is None


def test_place_bbox_crossing_the_antimeridian_is_kept() -> None:
    p = payload(geo={"place_id": "pl1"})
    p["includes"]["places"][0]["geo"]["bbox"] = [178.5, -18.3, -179.5, -16.0]  # Fiji
    post = parse_stream_line(line(p))
    assert post.place is not None and post.place.bbox == (178.5, -18.3, -179.5, -16.0)


def test_timeline_page_yields_posts_and_errors_with_their_own_raw() -> None:
    good = payload()["data"]
    bad = {**good, "id": "1850000000000000002", "text": ""}
    page = {"data": [good, bad, "junk"], "includes": payload()["includes"], "meta": {}}
    results = list(parse_timeline_page(page))
    assert results[0][1].author.handle == "ann_k"  # type: ignore[union-attr]
    assert isinstance(results[1][1], PayloadError) and json.loads(results[1][0])["data"] == bad
    assert isinstance(results[2][1], PayloadError)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300))
def test_any_bytes_give_a_post_or_a_payload_error(raw: bytes) -> None:
    try:
        parse_stream_line(raw)
    except PayloadError:
        pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(
        ["id", "text", "author_id", "created_at", "geo", "entities", "referenced_tweets", "lang"]
    ),
    value=json_values,
    includes=json_values,
)
def test_mutated_payloads_give_a_post_or_a_payload_error(
    field: str, value: Any, includes: Any
) -> None:
    p = payload()
    p["data"][field] = value
    if isinstance(includes, dict):
        p["includes"] = includes
    try:
        post = parse_stream_line(line(p))
    except PayloadError:
        return
    assert post.text and post.id.isdigit()
