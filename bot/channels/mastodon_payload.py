"""Mastodon statuses → :class:`~bot.models.Post`: HTML to text, profile location, raw JSON.

Malformed statuses raise :class:`~bot.errors.PayloadError` naming what is missing; the source
turns that into a dead letter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from typing import Any

import orjson

from bot.errors import (
    PayloadError,
)
from bot.models import Author, Post

PLATFORM = "mastodon"
CHECKPOINT_NAME = "mastodon:since_id"

# Profile metadata names that hold a location; Mastodon has no location field of its own.
LOCATION_FIELD_NAMES = frozenset(
    {
        "location",
        "where",
        "city",
        "based in",
        "lives in",
        "hometown",
        "home town",
        "standort",
        "wohnort",
        "ubicación",
        "ubicacion",
        "localisation",
        "lieu",
    }
)

# Invisible characters with no meaning in plain text (zero-width space, word joiner, BOM, soft
# hyphen). They split words for matching ("@\u200bbank"). Zero-width joiners and non-joiners
# stay: emoji sequences and Persian or Indic scripts need them; bidi marks stay too.
_INVISIBLE = str.maketrans({"\u200b": None, "\u2060": None, "\ufeff": None, "\u00ad": None})
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")  # whitespace as HTML collapses it
_BLOCK_TAGS = frozenset(
    {"p", "div", "li", "ul", "ol", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}
)
_SKIP_TAGS = frozenset({"script", "style", "template"})


# --- parsing -------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    """Collects the text of Mastodon's status HTML, keeping line and paragraph breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities arrive already unescaped
        self._parts: list[str] = []
        self._pre = 0
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "br":
            self._trim_spaces()
            self._parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self._ensure_newlines(2 if tag == "p" else 1)  # text before a block ends its line
            if tag == "pre":
                self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag == "p":
            self._ensure_newlines(2)
        elif tag in _BLOCK_TAGS:
            self._ensure_newlines(1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if not self._pre:
            data = _HTML_SPACE.sub(" ", data)
            if self._at_line_start():
                data = data.lstrip(" ")
        if data:
            self._parts.append(data)

    def text(self) -> str:
        self.close()
        self._trim_spaces()
        return "".join(self._parts).strip("\n").translate(_INVISIBLE)

    def _at_line_start(self) -> bool:
        return not self._parts or self._parts[-1].endswith("\n")

    def _trim_spaces(self) -> None:
        while self._parts and self._parts[-1].endswith(" "):
            self._parts[-1] = self._parts[-1].rstrip(" ")
            if not self._parts[-1]:
                self._parts.pop()

    def _ensure_newlines(self, n: int) -> None:
        self._trim_spaces()
        if not self._parts:
            return
        tail = "".join(self._parts[-n:])
        have = len(tail) - len(tail.rstrip("\n"))
        if have < n:
            self._parts.append("\n" * (n - have))


def html_to_text(html: str) -> str:
    """Plain text of a status's HTML: tags stripped, entities unescaped, breaks kept.

    ``<br>`` becomes a newline and paragraphs are separated by a blank line. Link text is kept
    whole, including the parts Mastodon hides with ``class="invisible"``, so URLs stay complete.
    """
    parser = _TextExtractor()
    parser.feed(html)
    return parser.text()


def _require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    value = mapping.get(key)
    if value is None:
        raise PayloadError(f"{where}.{key} is missing")
    return value


def _id(value: Any, where: str) -> str:
    # Mastodon sends ids as strings; Mastodon.py turns numeric ones into ints.
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise PayloadError(f"{where} is not an id: {value!r}")
    return str(value)


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{where} is not a string: {type(value).__name__}")
    return value


def _created_at(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise PayloadError(f"status.created_at is not an ISO 8601 time: {value!r}") from None
    if not isinstance(value, datetime):
        raise PayloadError(f"status.created_at is not a time: {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise PayloadError("status.created_at has no time zone")
    return value.astimezone(UTC)


def _normalise_field_name(name: str) -> str:
    kept = "".join(ch for ch in name.casefold() if ch.isalnum() or ch.isspace())
    return " ".join(kept.split())


def profile_location(account: Mapping[str, Any]) -> str:
    """The value of the first profile metadata field named like a location, or ``""``."""
    fields = account.get("fields")
    if not isinstance(fields, Sequence) or isinstance(fields, str):
        return ""
    for item in fields:
        if not isinstance(item, Mapping):
            continue
        name, value = item.get("name"), item.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        if _normalise_field_name(name) in LOCATION_FIELD_NAMES:
            return " ".join(html_to_text(value).split())
    return ""


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: mappings to dicts, sequences to lists, times to ISO 8601."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)  # orjson's integer range
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def raw_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON, for ``Post.raw`` and ``Rejected.raw``.

    Mastodon.py parses responses before handing them over, so the bytes the server sent are
    gone; this is the closest record of them (Mastodon.py's additions and all).
    """
    return orjson.dumps(json_safe(value))


def parse_status(status: Mapping[str, Any], max_text_chars: int = 25_000) -> Post:
    """Turn a Mastodon status (as in a mention notification) into a :class:`Post`.

    Accepts the JSON the API sends and the objects Mastodon.py makes of it (datetimes, int ids).
    Raises :class:`PayloadError` naming the missing or malformed part, or when the text is
    longer than ``max_text_chars`` (other servers federate posts far over Mastodon's 500).
    """
    if not isinstance(status, Mapping):
        raise PayloadError(f"status is not an object: {type(status).__name__}")
    status_id = _id(_require(status, "id", "status"), "status.id")
    account = _require(status, "account", "status")
    if not isinstance(account, Mapping):
        raise PayloadError("status.account is not an object")
    author = Author(
        id=_id(_require(account, "id", "status.account"), "status.account.id"),
        handle=_str(_require(account, "acct", "status.account"), "status.account.acct"),
        name=_str(account.get("display_name"), "status.account.display_name"),
        location=profile_location(account),
    )
    if not author.handle:
        raise PayloadError("status.account.acct is empty")
    content = _str(_require(status, "content", "status"), "status.content")
    mentions = status.get("mentions") or ()
    if not isinstance(mentions, Sequence) or isinstance(mentions, str):
        raise PayloadError("status.mentions is not a list")
    accts: list[str] = []
    for i, mention in enumerate(mentions):
        if not isinstance(mention, Mapping):
            raise PayloadError(f"status.mentions[{i}] is not an object")
        accts.append(_str(_require(mention, "acct", f"status.mentions[{i}]"), "mention.acct"))
    text = html_to_text(content)
    if len(text) > max_text_chars:
        raise PayloadError(
            f"status {status_id}: text of {len(text)} characters is over the {max_text_chars} limit"
        )
    reply_to = status.get("in_reply_to_id")
    return Post(
        id=status_id,
        platform=PLATFORM,
        author=author,
        text=text,
        created_at=_created_at(_require(status, "created_at", "status")),
        lang=_str(status.get("language"), "status.language"),
        in_reply_to=None if reply_to is None else _id(reply_to, "status.in_reply_to_id"),
        conversation_id=None,
        mentions=tuple(accts),
        raw=raw_json(status),
    )


# --- errors --------------------------------------------------------------------------------
