"""X API v2 payloads as the sandbox stores and serves them: posts, places, mentions, times.

:func:`tweet_payload` builds a filtered-stream payload with every expansion and field the bot
asks for; tests and the demo use it to make posts. The small helpers read loosely shaped JSON.
"""

from __future__ import annotations

import copy
import hashlib
import re
from datetime import UTC, datetime
from typing import Any

DEFAULT_BOT_USER_ID = "1000"
DEFAULT_BOT_HANDLE = "NorthbankHelp"

# X usernames: 1-15 word characters, not preceded by a word character or @ (so not in emails).
MENTION = re.compile(r"(?<![A-Za-z0-9_@])@([A-Za-z0-9_]{1,15})(?![A-Za-z0-9_@])")


def x_time(when: datetime) -> str:
    """X's timestamp format: ISO 8601 in UTC with milliseconds and ``Z``."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def mention_entities(text: str) -> list[dict[str, Any]]:
    """``entities.mentions`` for the @handles in ``text`` (code point offsets, end exclusive)."""
    return [
        {"start": m.start(), "end": m.end(), "username": m.group(1)} for m in MENTION.finditer(text)
    ]


def place_object(place: dict[str, Any]) -> dict[str, Any]:
    """A place as X expands it: ``{"id", "full_name", ..., "geo": {"bbox": [w, s, e, n]}}``."""
    full_name = str(place.get("full_name") or place.get("name") or "")
    pid = place.get("id") or hashlib.sha1(full_name.encode()).hexdigest()[:16]  # noqa: S324
    out: dict[str, Any] = {
        "id": str(pid),
        "full_name": full_name,
        "name": str(place.get("name") or full_name.split(",")[0]),
        "country_code": str(place.get("country_code") or ""),
        "place_type": str(place.get("place_type") or "city"),
    }
    bbox = place.get("bbox") or (place.get("geo") or {}).get("bbox")
    if bbox:
        out["geo"] = {"type": "Feature", "bbox": [float(v) for v in bbox], "properties": {}}
    return out


def tweet_payload(
    text: str,
    *,
    post_id: str,
    author_id: str = "42",
    username: str = "ann_k",
    name: str = "Ann",
    location: str = "",
    created_at: datetime | None = None,
    lang: str = "en",
    coordinates: tuple[float, float] | None = None,  # (lat, lon)
    place: dict[str, Any] | None = None,  # {"id","full_name","name","country_code","bbox"}
    in_reply_to: str | None = None,
    conversation_id: str | None = None,
    matching_rules: list[dict[str, Any]] | None = None,
    in_reply_to_user_id: str | None = None,
) -> dict[str, Any]:
    """A filtered-stream payload as X sends it with every expansion and field the bot asks for.

    ``in_reply_to_user_id`` defaults to the sandbox bot's id when replying (the usual case: a
    customer answering the bot); :meth:`SandboxServer.publish` corrects it from the parent post
    when the sandbox knows that post.
    """
    post_id = str(post_id)
    tweet: dict[str, Any] = {
        "id": post_id,
        "text": text,
        "edit_history_tweet_ids": [post_id],
        "author_id": str(author_id),
        "created_at": x_time(created_at or datetime.now(UTC)),
        "lang": lang,
        "conversation_id": str(conversation_id or in_reply_to or post_id),
    }
    mentions = mention_entities(text)
    if mentions:
        tweet["entities"] = {"mentions": mentions}
    if in_reply_to is not None:
        tweet["in_reply_to_user_id"] = str(in_reply_to_user_id or DEFAULT_BOT_USER_ID)
        tweet["referenced_tweets"] = [{"type": "replied_to", "id": str(in_reply_to)}]
    includes: dict[str, Any] = {}
    user: dict[str, Any] = {"id": str(author_id), "name": name, "username": username}
    if location:
        user["location"] = location
    includes["users"] = [user]
    geo: dict[str, Any] = {}
    if place is not None:
        pl = place_object(place)
        geo["place_id"] = pl["id"]
        includes["places"] = [pl]
    if coordinates is not None:
        lat, lon = coordinates
        geo["coordinates"] = {"type": "Point", "coordinates": [float(lon), float(lat)]}
    if geo:
        tweet["geo"] = geo
    payload: dict[str, Any] = {"data": tweet, "includes": includes}
    payload["matching_rules"] = list(matching_rules or [])
    return payload


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def id_number(post_id: Any) -> int:
    """A post id as a number for ordering; ids that are not numbers sort first."""
    return int(post_id) if isinstance(post_id, str) and post_id.isdigit() else -1


def pick(obj: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in obj.items() if k in keys}
