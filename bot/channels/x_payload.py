"""X API v2 payloads → :class:`~bot.models.Post`.

One parser for the filtered stream (one JSON object a line) and the mentions timeline (a page of
tweets with shared ``includes``). Anything that cannot become a Post raises
:class:`~bot.errors.PayloadError` with the reason; callers turn that into a dead letter.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from bot.errors import PayloadError
from bot.models import Author, Place, Post

PLATFORM = "x"

# What the bot asks X for, on the stream and the mentions timeline alike.
EXPANSIONS = ["author_id", "geo.place_id", "entities.mentions.username", "in_reply_to_user_id"]
TWEET_FIELDS = [
    "created_at",
    "lang",
    "geo",
    "entities",
    "conversation_id",
    "in_reply_to_user_id",
    "referenced_tweets",
    "author_id",
]
USER_FIELDS = ["username", "name", "location"]
PLACE_FIELDS = ["full_name", "name", "country_code", "geo", "place_type"]


def parse_stream_line(raw: bytes, max_text_chars: int = 25_000) -> Post:
    """One line of the filtered stream (or of a replay file) → Post."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise PayloadError(f"not UTF-8: invalid byte at offset {uexc.start}") from None
        raise PayloadError(f"invalid or truncated JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"expected a JSON object, got {type(payload).__name__}")
    data = payload.get("data")
    if data is None:
        if "errors" in payload:
            raise PayloadError(f"stream error message, not a post: {_errors_summary(payload)}")
        raise PayloadError("no 'data' object in payload")
    if not isinstance(data, dict):
        raise PayloadError(f"'data' must be an object, got {type(data).__name__}")
    includes = payload.get("includes") or {}
    if not isinstance(includes, dict):
        raise PayloadError("'includes' must be an object")
    return build_post(
        data, _index(includes, "users"), _index(includes, "places"), raw, max_text_chars
    )


def parse_timeline_page(
    page: Mapping[str, Any], max_text_chars: int = 25_000
) -> Iterator[tuple[bytes, Post | PayloadError]]:
    """Each tweet of a timeline page → (its raw payload, Post or the PayloadError saying why)."""
    includes = page.get("includes") or {}
    users = _index(includes, "users") if isinstance(includes, dict) else {}
    places = _index(includes, "places") if isinstance(includes, dict) else {}
    for tweet in _list(page.get("data")):
        if not isinstance(tweet, dict):
            error = PayloadError(f"timeline entry is not an object: {tweet!r:.80}")
            yield orjson.dumps({"data": tweet}, default=repr), error
            continue
        raw = orjson.dumps(
            {"data": tweet, "includes": _includes_for(tweet, users, places)}, default=repr
        )
        try:
            yield raw, build_post(tweet, users, places, raw, max_text_chars)
        except PayloadError as exc:
            yield raw, exc


def build_post(
    tweet: Mapping[str, Any],
    users: Mapping[str, Mapping[str, Any]],
    places: Mapping[str, Mapping[str, Any]],
    raw: bytes,
    max_text_chars: int = 25_000,
) -> Post:
    """A tweet object plus its expansions → Post; unknown fields are ignored (kept in raw)."""
    post_id = _str_id(tweet.get("id"), "data.id")
    text = tweet.get("text")
    if not isinstance(text, str):
        raise PayloadError(f"post {post_id}: 'text' missing or not a string")
    if not text.strip():
        raise PayloadError(f"post {post_id}: empty text (media-only post?)")
    if len(text) > max_text_chars:
        raise PayloadError(
            f"post {post_id}: text of {len(text)} characters is over the {max_text_chars} limit"
        )
    author_id = _str_id(tweet.get("author_id"), "data.author_id")
    user = users.get(author_id) or {}
    author = Author(
        id=author_id,
        handle=_s(user.get("username")),
        name=_s(user.get("name")),
        location=_s(user.get("location")),
    )
    in_reply_to = None
    for ref in _list(tweet.get("referenced_tweets")):
        if isinstance(ref, dict) and ref.get("type") == "replied_to" and ref.get("id"):
            in_reply_to = str(ref["id"])
    geo_field = tweet.get("geo")
    geo: Mapping[str, Any] = geo_field if isinstance(geo_field, dict) else {}
    mentions = tuple(
        _s(m.get("username"))
        for m in _list(_dict(tweet.get("entities")).get("mentions"))
        if isinstance(m, dict) and m.get("username")
    )
    return Post(
        id=post_id,
        platform=PLATFORM,
        author=author,
        text=text,
        created_at=_time(tweet.get("created_at")),
        lang=_s(tweet.get("lang")),
        coordinates=_coordinates(geo),
        place=_place(places.get(_s(geo.get("place_id")))),
        in_reply_to=in_reply_to,
        conversation_id=_s(tweet.get("conversation_id")) or None,
        mentions=mentions,
        raw=raw,
    )


def _index(includes: Mapping[str, Any], kind: str) -> dict[str, Mapping[str, Any]]:
    items = includes.get(kind) or []
    if not isinstance(items, list):
        return {}
    return {str(i["id"]): i for i in items if isinstance(i, dict) and "id" in i}


def _includes_for(
    tweet: Mapping[str, Any],
    users: Mapping[str, Mapping[str, Any]],
    places: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    user = users.get(str(tweet.get("author_id")))
    if user:
        out["users"] = [user]
    geo = tweet.get("geo")
    place = places.get(str(geo.get("place_id"))) if isinstance(geo, dict) else None
    if place:
        out["places"] = [place]
    return out


def _str_id(value: Any, field: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.isdigit() or len(value) > 20:
        raise PayloadError(f"{field} missing or not a numeric id: {value!r:.40}")
    return value


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _time(value: Any) -> datetime:
    """X's ISO 8601 time; a missing or bad one becomes the time of receipt."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _coordinates(geo: Mapping[str, Any]) -> tuple[float, float] | None:
    """GeoJSON point [lon, lat] → (lat, lon); out-of-range or malformed points are ignored."""
    point = geo.get("coordinates")
    if not isinstance(point, dict):
        return None
    pair = point.get("coordinates")
    if not isinstance(pair, list) or len(pair) != 2:
        return None
    try:
        lon, lat = float(pair[0]), float(pair[1])
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return (lat, lon)


def _place(place: Mapping[str, Any] | None) -> Place | None:
    if not place:
        return None
    bbox = None
    geo = place.get("geo")
    if isinstance(geo, dict) and isinstance(geo.get("bbox"), list) and len(geo["bbox"]) == 4:
        try:
            w, s, e, n = (float(v) for v in geo["bbox"])
        except (TypeError, ValueError):
            bbox = None
        else:
            if all(math.isfinite(v) for v in (w, s, e, n)) and -90 <= s <= n <= 90:
                bbox = (w, s, e, n)  # w > e is legal: the box crosses the antimeridian
    return Place(
        name=_s(place.get("name")),
        full_name=_s(place.get("full_name")),
        country_code=_s(place.get("country_code")),
        bbox=bbox,
    )


def _errors_summary(payload: Mapping[str, Any]) -> str:
    errors = payload.get("errors")
    if not isinstance(errors, list):
        return str(errors)[:200]
    parts = []
    for e in errors[:3]:
        if isinstance(e, dict):
            parts.append(str(e.get("title") or e.get("message") or e.get("detail") or e)[:120])
    return "; ".join(parts)
