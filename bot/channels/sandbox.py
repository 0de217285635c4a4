"""A local X API v2 sandbox: a loopback HTTP server speaking the endpoints triagebot uses.

tweepy (``Client`` and ``StreamingClient``) runs unchanged against it over real HTTP once its
session is rebased with :func:`bot.channels.transport.rebase_session`. Tests and the demo drive
it through Python methods or the JSON control surface under ``/_sandbox/`` (no auth):
``GET state``, ``GET posts_by_bot``, ``POST publish | fail_next | drop_stream | stall_stream |
send_raw_line | rate_limit | reset``.

Served (shapes as X API v2 documents them): the filtered stream and its rules, ``users/me``,
``users/by/username/:username``, ``users/:id/mentions``, ``users/:id/tweets`` and
``POST /2/tweets``. Every response carries ``x-rate-limit-*`` headers. As on X: fields and
expansions are returned only when asked for; one stream connection at a time; adding rules is
all or nothing; the stream and rules need a Bearer token (``bearer_token`` when one is set),
``users/me`` and posting need user context (OAuth 1.0a, whose signature is not checked, or any
Bearer token when no ``bearer_token`` is set); a reply must answer a post the sandbox knows;
the bot's own posts reach the stream when a rule matches them.

Stream rule syntax supported (case-insensitive): keywords (AND by juxtaposition), ``"exact
phrases"``, ``OR`` (AND binds tighter), ``( )`` grouping, ``-`` negation of any clause,
``@handle``, ``#hashtag``, ``from:`` and ``to:`` (username or id), ``is:reply``, ``is:retweet``,
``is:quote`` and ``is:verified`` (never true here), ``has:mentions|geo|hashtags|links`` (media
kinds never true), ``lang:``, ``conversation_id:``, ``place_country:``. Keywords match whole
words of the text. Rejected X-style: empty or over 512 characters, unbalanced parentheses or
quotes, a dangling ``OR``, an unknown operator or value, only negated clauses.

Written by hand because no maintained library fakes X API v2 (responses-style mocks would
replace tweepy's HTTP layer rather than exercise it).
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import logging
import queue
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twitter_text import parse_tweet

log = logging.getLogger(__name__)

DEFAULT_BOT_USER_ID = "1000"
DEFAULT_BOT_HANDLE = "NorthbankHelp"

# X usernames: 1-15 word characters, not preceded by a word character or @ (so not in emails).
_MENTION = re.compile(r"(?<![A-Za-z0-9_@])@([A-Za-z0-9_]{1,15})(?![A-Za-z0-9_@])")


def x_time(when: datetime) -> str:
    """X's timestamp format: ISO 8601 in UTC with milliseconds and ``Z``."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def mention_entities(text: str) -> list[dict[str, Any]]:
    """``entities.mentions`` for the @handles in ``text`` (code point offsets, end exclusive)."""
    return [
        {"start": m.start(), "end": m.end(), "username": m.group(1)}
        for m in _MENTION.finditer(text)
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


# -- stream rules -------------------------------------------------------------------------------

MAX_RULE_LENGTH = 512
_OPERATORS = {
    "from": None,
    "to": None,
    "lang": None,
    "conversation_id": None,
    "place_country": None,
    "is": {"retweet", "quote", "reply", "verified"},
    "has": {"mentions", "geo", "hashtags", "links", "media", "images", "videos"},
}
_WORD = re.compile(r"\w+")
_BARE = re.compile(r'[^\s()"]+')


class RuleSyntaxError(ValueError):
    """A stream rule X would reject; ``str()`` is X's ``detail`` text."""


class TweetView:
    """What rules look at in a post: lower-cased words, mentions, author and reply target."""

    def __init__(
        self,
        tweet: dict[str, Any],
        users: Mapping[str, dict[str, Any]],
        places: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        text = str(tweet.get("text") or "")
        self.words = _WORD.findall(text.lower())
        self.hashtags = {h.lower() for h in re.findall(r"(?<!\w)#(\w+)", text)}
        entities = _dict(tweet.get("entities"))
        self.mentions = {
            str(m.get("username", "")).lower() for m in _list(entities.get("mentions")) if _dict(m)
        }
        self.mentions |= {m.group(1).lower() for m in _MENTION.finditer(text)}
        self.author_id = str(tweet.get("author_id") or "")
        self.author = str(users.get(self.author_id, {}).get("username", "")).lower()
        self.reply_to_id = str(tweet.get("in_reply_to_user_id") or "")
        self.reply_to = str(users.get(self.reply_to_id, {}).get("username", "")).lower()
        refs = _list(tweet.get("referenced_tweets"))
        self.is_reply = any(_dict(r).get("type") == "replied_to" for r in refs)
        self.geo = _dict(tweet.get("geo"))
        self.lang = str(tweet.get("lang") or "").lower()
        self.conversation_id = str(tweet.get("conversation_id") or "")
        place = (places or {}).get(str(self.geo.get("place_id")), {})
        self.country = str(place.get("country_code") or "").lower()
        self.has_links = "http://" in text or "https://" in text


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _num(post_id: Any) -> int:
    """A post id as a number for ordering; ids that are not numbers sort first."""
    return int(post_id) if isinstance(post_id, str) and post_id.isdigit() else -1


class Rule:
    """A parsed stream rule: ``matches(view)`` says whether a post satisfies it."""

    def __init__(self, kind: str, value: str = "", children: list[Rule] | None = None) -> None:
        self.kind = kind  # and | or | not | phrase | mention | hashtag | op:<name>
        self.value = value
        self.children = children or []

    def positive(self) -> bool:
        """Whether the rule can match on its own (X refuses rules of negations only)."""
        if self.kind == "not":
            return False
        if self.kind == "and":
            return any(c.positive() for c in self.children)
        if self.kind == "or":
            return all(c.positive() for c in self.children)
        return True

    def matches(self, v: TweetView) -> bool:
        k, val = self.kind, self.value
        if k == "and":
            return all(c.matches(v) for c in self.children)
        if k == "or":
            return any(c.matches(v) for c in self.children)
        if k == "not":
            return not self.children[0].matches(v)
        if k == "phrase":
            words = val.split()
            n = len(words)
            return any(v.words[i : i + n] == words for i in range(len(v.words) - n + 1))
        if k == "mention":
            return val in v.mentions
        if k == "hashtag":
            return val in v.hashtags
        if k == "op:from":
            return val in (v.author, v.author_id)
        if k == "op:to":
            return val in (v.reply_to, v.reply_to_id) and bool(val)
        if k == "op:lang":
            return v.lang == val
        if k == "op:conversation_id":
            return v.conversation_id == val
        if k == "op:place_country":
            return v.country == val
        if k == "op:is":
            return val == "reply" and v.is_reply  # retweets, quotes, verified: never here
        if k == "op:has":
            return {
                "mentions": bool(v.mentions),
                "geo": bool(v.geo),
                "hashtags": bool(v.hashtags),
                "links": v.has_links,
            }.get(val, False)
        raise AssertionError(k)


def parse_rule(value: str) -> Rule:
    """Parse an X filtered-stream rule; raise :class:`RuleSyntaxError` as X would reject it."""
    if not value.strip():
        raise RuleSyntaxError("Rule value must not be empty")
    if len(value) > MAX_RULE_LENGTH:
        raise RuleSyntaxError(
            f"Rule is {len(value)} characters long; the maximum is {MAX_RULE_LENGTH}"
        )
    parser = _RuleParser(_lex(value))
    rule = parser.expr()
    if parser.pos != len(parser.tokens):
        kind, _, at = parser.tokens[parser.pos]
        if kind == ")":
            raise RuleSyntaxError(f"Rules must contain balanced parentheses (at position {at + 1})")
        raise RuleSyntaxError(f"Unexpected {kind!r} (at position {at + 1})")
    if not rule.positive():
        raise RuleSyntaxError("Rules must contain at least one positive, non-negated clause")
    return rule


def _lex(value: str) -> list[tuple[str, str, int]]:
    """Tokens (kind, text, position): ``( ) - OR phrase word``."""
    out: list[tuple[str, str, int]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c.isspace():
            i += 1
        elif c in "()":
            out.append((c, c, i))
            i += 1
        elif c == "-":
            if i + 1 >= n or value[i + 1].isspace():
                raise RuleSyntaxError(f"Negation must precede a clause (at position {i + 1})")
            out.append(("-", c, i))
            i += 1
        elif c == '"':
            end = value.find('"', i + 1)
            if end < 0:
                raise RuleSyntaxError(f"Rules must contain balanced quotes (at position {i + 1})")
            if not value[i + 1 : end].strip():
                raise RuleSyntaxError(f"Quoted phrases must not be empty (at position {i + 1})")
            out.append(("phrase", value[i + 1 : end], i))
            i = end + 1
        else:
            m = _BARE.match(value, i)
            assert m is not None
            word = m.group(0)
            out.append(("OR" if word == "OR" else "word", word, i))
            i = m.end()
    return out


class _RuleParser:
    """Recursive descent: ``expr := and (OR and)*``, ``and := unary+``, ``unary := -? atom``."""

    def __init__(self, tokens: list[tuple[str, str, int]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def _peek(self) -> str:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else ""

    def expr(self) -> Rule:
        parts = [self.conjunction()]
        while self._peek() == "OR":
            self.pos += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Rule("or", children=parts)

    def conjunction(self) -> Rule:
        parts: list[Rule] = []
        while self._peek() in ("(", "-", "phrase", "word"):
            parts.append(self.unary())
        if not parts:
            at = self.tokens[self.pos][2] + 1 if self.pos < len(self.tokens) else 0
            what = self._peek() or "end of rule"
            if what == "OR" or (self.pos and self.tokens[self.pos - 1][0] == "OR"):
                raise RuleSyntaxError(f"OR must join two clauses (at position {at})")
            raise RuleSyntaxError(f"Expected a clause, found {what!r} (at position {at})")
        return parts[0] if len(parts) == 1 else Rule("and", children=parts)

    def unary(self) -> Rule:
        if self._peek() == "-":
            self.pos += 1
            if self._peek() not in ("(", "phrase", "word"):
                raise RuleSyntaxError("Negation must precede a clause")
            return Rule("not", children=[self.atom()])
        return self.atom()

    def atom(self) -> Rule:
        kind, text, at = self.tokens[self.pos]
        self.pos += 1
        if kind == "(":
            inner = self.expr()
            if self._peek() != ")":
                raise RuleSyntaxError(
                    f"Rules must contain balanced parentheses (at position {at + 1})"
                )
            self.pos += 1
            return inner
        if kind == "phrase":
            return Rule("phrase", " ".join(_WORD.findall(text.lower())))
        return _term(text, at)


def _term(word: str, at: int) -> Rule:
    low = word.lower()
    if low.startswith("@") and len(low) > 1:
        return Rule("mention", low[1:])
    if low.startswith("#") and len(low) > 1:
        return Rule("hashtag", low[1:])
    name, colon, arg = low.partition(":")
    if colon and re.fullmatch(r"[a-z_]+", name):
        if name not in _OPERATORS:
            raise RuleSyntaxError(f"Reference to invalid operator '{name}' (at position {at + 1})")
        allowed = _OPERATORS[name]
        if not arg or (allowed is not None and arg not in allowed):
            raise RuleSyntaxError(f"Reference to invalid field '{arg}' (at position {at + 1})")
        return Rule("op:" + name, arg.lstrip("@"))
    words = _WORD.findall(low)
    if not words:
        raise RuleSyntaxError(f"Invalid clause {word!r} (at position {at + 1})")
    return Rule("phrase", " ".join(words))


# -- server state -------------------------------------------------------------------------------

DEFAULT_RATE_LIMIT = 10_000  # requests per window and endpoint: generous unless configured
TWEPOCH_MS = 1_288_834_974_657  # X's snowflake epoch
_PROBLEM = "https://api.twitter.com/2/problems/"
_INVALID_REQUEST = {
    "title": "Invalid Request",
    "detail": "One or more parameters to your request was invalid.",
    "type": _PROBLEM + "invalid-request",
}
TOO_MANY_CONNECTIONS = {
    "title": "ConnectionException",
    "detail": "This stream is currently at the maximum allowed connection limit.",
    "connection_issue": "TooManyConnections",
    "type": _PROBLEM + "streaming-connection",
}
DUPLICATE_CONTENT = "You are not allowed to create a Tweet with duplicate content."


def problem(status: int, detail: str | None = None, title: str | None = None) -> dict[str, Any]:
    """X's plain error body for ``status`` (``type: about:blank``)."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return {
        "title": title or phrase,
        "detail": detail or phrase,
        "type": "about:blank",
        "status": status,
    }


def invalid_param(name: str, value: str, message: str) -> dict[str, Any]:
    """X's 400 body for a bad query parameter."""
    return {"errors": [{"parameters": {name: [value]}, "message": message}], **_INVALID_REQUEST}


def _unsupported_auth(kind: str, supported: str) -> dict[str, Any]:
    return {
        "title": "Unsupported Authentication",
        "detail": f"Authenticating with {kind} is forbidden for this endpoint.  "
        f"Supported authentication types are [{supported}].",
        "type": _PROBLEM + "unsupported-authentication",
        "status": 403,
    }


@dataclass
class _Stored:
    payload: dict[str, Any]
    published: float  # time.monotonic() when published, for backfill


@dataclass
class _Failure:
    prefix: str
    status: int
    count: int
    headers: dict[str, str]
    body: Any


@dataclass
class _Window:
    limit: int
    reset: float = 0.0  # epoch seconds
    used: int = 0


class _StreamConn:
    """One open filtered-stream connection: its socket, query and queue of events to send."""

    def __init__(self, sock: socket.socket, query: dict[str, list[str]]) -> None:
        self.sock = sock
        self.query = query
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.closed = threading.Event()

    def alive(self) -> bool:
        """Whether the client still holds the connection (no EOF or error pending)."""
        if self.closed.is_set():
            return False
        try:
            poller = select.poll()  # not select.select: that fails on descriptors over 1023
            poller.register(self.sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            if poller.poll(0):  # readable: EOF or an error, as a stream client sends nothing
                return bool(self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except (OSError, ValueError):
            return False
        return True


Query = dict[str, list[str]]
Reply = tuple[int, Any]


def _csv(query: dict[str, list[str]], key: str) -> set[str]:
    return {v for raw in query.get(key, []) for v in raw.split(",") if v}


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


class SandboxServer:
    """The X API v2 sandbox: state, the Python control surface, and the HTTP server.

    Use as a context manager, or ``start()`` and ``stop()``; ``base_url`` is where it listens.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_user_id: str = DEFAULT_BOT_USER_ID,
        bot_handle: str = DEFAULT_BOT_HANDLE,
        bearer_token: str | None = None,
        keepalive_interval: float = 20.0,
        rate_limits: Mapping[str, int] | None = None,
        rate_window: float = 900.0,
    ) -> None:
        self.bot_user_id = str(bot_user_id)
        self.bot_handle = bot_handle
        self.bearer_token = bearer_token
        self.keepalive_interval = keepalive_interval
        self.rate_window = rate_window
        self._rate_config = dict(rate_limits or {})
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._last_id = 0
        self._reset_state()
        self._httpd = _HTTPServer((host, port), self)
        self._thread: threading.Thread | None = None

    def _reset_state(self) -> None:
        self._posts: dict[str, _Stored] = {}
        self._bot_posts: list[str] = []
        self._rules: dict[str, tuple[str, str | None, Rule]] = {}  # id → (value, tag, parsed)
        self._failures: list[_Failure] = []
        self._windows: dict[str, _Window] = {}
        self._users: dict[str, dict[str, Any]] = {
            self.bot_user_id: {
                "id": self.bot_user_id,
                "name": self.bot_handle,
                "username": self.bot_handle,
            }
        }
        self._places: dict[str, dict[str, Any]] = {}
        self._stream: _StreamConn | None = None
        self._pending_stall = 0.0
        self.stream_connections = 0

    # -- lifecycle --

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SandboxServer:
        """Serve in a background thread; returns self."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections (streams included) and join every thread."""
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.close_all(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control surface --

    def publish(self, payload: dict[str, Any] | None = None, /, **kwargs: Any) -> str:
        """Publish a post (a payload, or :func:`tweet_payload` keyword arguments); its id.

        A missing id gets the next snowflake-like id. The post goes to the stream when a rule
        matches and is in the mentions timeline of every user it @mentions. With keyword
        arguments, a ``username`` without ``author_id`` gets that user's own stable id, and a
        reply to a known post gets its author and conversation.
        """
        with self._lock:
            if payload is None:
                post_id = str(kwargs.pop("post_id", None) or self._next_id())
                if "username" in kwargs and "author_id" not in kwargs:
                    kwargs["author_id"] = self._user_id_for(str(kwargs["username"]))
                parent = self._posts.get(str(kwargs.get("in_reply_to")))
                if parent is not None:
                    pdata = parent.payload["data"]
                    kwargs.setdefault("in_reply_to_user_id", pdata.get("author_id"))
                    kwargs.setdefault("conversation_id", pdata.get("conversation_id"))
                payload = tweet_payload(post_id=post_id, **kwargs)
            else:
                payload = copy.deepcopy(payload)
                data = payload.get("data")
                if not isinstance(data, dict):
                    raise ValueError("payload has no 'data' object")
                if not data.get("id"):
                    data["id"] = self._next_id()
                    data.setdefault("edit_history_tweet_ids", [data["id"]])
                    data.setdefault("conversation_id", data["id"])
                data["id"] = str(data["id"])
            return self._store(payload)

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        count: int = 1,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``count`` API requests whose path starts with ``path_prefix``.

        ``body`` (a JSON-able object, str or bytes) defaults to X's error body for ``status``;
        ``headers`` are added to (or override) the rate-limit headers.
        """
        with self._lock:
            self._failures.append(
                _Failure(path_prefix, int(status), int(count), dict(headers or {}), body)
            )

    def set_rate_limit(self, endpoint: str, limit: int) -> None:
        """Limit ``endpoint`` (e.g. ``"GET /2/users/:id/mentions"``) per window; starts afresh."""
        with self._lock:
            self._rate_config[endpoint] = int(limit)
            self._windows.pop(endpoint, None)

    def drop_stream(self, timeout: float = 2.0) -> bool:
        """Close the current stream connection abruptly; whether one was open and is closed."""
        with self._lock:
            conn, self._stream = self._stream, None
            if conn is None:
                return False
            conn.events.put(("drop", None))
        return conn.closed.wait(timeout)

    def stall_stream(self, seconds: float) -> None:
        """Send nothing on the stream (not even keep-alives) for ``seconds``.

        Applies to the open connection, or to the next one when none is open.
        """
        with self._lock:
            if self._stream is not None:
                self._stream.events.put(("stall", float(seconds)))
            else:
                self._pending_stall = float(seconds)

    def send_raw_line(self, line: bytes) -> bool:
        """Push ``line`` as is (plus ``\\r\\n``) to the open stream; whether one was open."""
        with self._lock:
            if self._stream is None:
                return False
            self._stream.events.put(("line", bytes(line)))
            return True

    def posts_by_bot(self) -> list[dict[str, Any]]:
        """The bot's posts (X tweet objects), oldest first."""
        with self._lock:
            return [copy.deepcopy(self._posts[i].payload["data"]) for i in self._bot_posts]

    def stream_connected(self) -> bool:
        """Whether a client holds the stream now."""
        with self._lock:
            return self._stream is not None and self._stream.alive()

    def wait_for_stream(self, connections: int = 1, timeout: float = 5.0) -> bool:
        """Wait until a stream is open and ``connections`` have been made in all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stream_connections >= connections and self.stream_connected():
                return True
            time.sleep(0.01)
        return False

    def rules(self) -> list[dict[str, str]]:
        """The stream rules, as X lists them."""
        with self._lock:
            return [_rule_json(rid, v, t) for rid, (v, t, _) in self._rules.items()]

    def reset(self) -> None:
        """Forget posts, rules, failures and rate windows; close the stream. Ids keep rising."""
        self.drop_stream()
        with self._lock:
            self._reset_state()

    def state(self) -> dict[str, Any]:
        """A summary for the control endpoint ``GET /_sandbox/state``."""
        with self._lock:
            return {
                "base_url": self.base_url,
                "bot": self._users[self.bot_user_id],
                "stream_connected": self.stream_connected(),
                "stream_connections": self.stream_connections,
                "rules": self.rules(),
                "posts": len(self._posts),
                "posts_by_bot": len(self._bot_posts),
            }

    # -- internals used by the handler --

    def _user_id_for(self, username: str) -> str:
        """The id of the user called ``username``: a known one's, else one derived from it."""
        for uid, user in self._users.items():
            if str(user.get("username", "")).lower() == username.lower():
                return uid
        if username == "ann_k":
            return "42"  # tweet_payload's default author
        return str(int(hashlib.sha256(username.lower().encode()).hexdigest()[:12], 16))

    def _next_id(self) -> str:
        """An increasing snowflake-like id: milliseconds since X's epoch, shifted by 22 bits."""
        with self._lock:
            self._last_id = max(self._last_id + 1, (int(time.time() * 1000) - TWEPOCH_MS) << 22)
            return str(self._last_id)

    def _store(self, payload: dict[str, Any], *, by_bot: bool = False) -> str:
        data = payload["data"]
        pid = str(data["id"])
        if pid.isdigit():
            self._last_id = max(self._last_id, int(pid))
        includes = _dict(payload.get("includes"))
        for user in _list(includes.get("users")):
            if isinstance(user, dict) and user.get("id"):
                self._users.setdefault(str(user["id"]), {}).update(user)  # latest profile
        for place in _list(includes.get("places")):
            if isinstance(place, dict) and place.get("id"):
                self._places[str(place["id"])] = place
        if pid not in self._posts and by_bot:
            self._bot_posts.append(pid)
        self._posts[pid] = _Stored(payload, time.monotonic())
        matched = self._matching_rules(data)
        if matched and self._stream is not None:
            self._stream.events.put(("line", self._stream_line(payload, matched, self._stream)))
        return pid

    def _matching_rules(self, tweet: dict[str, Any]) -> list[dict[str, str]]:
        view = TweetView(tweet, self._users, self._places)
        return [
            {"id": rid, "tag": tag or ""}
            for rid, (_, tag, rule) in self._rules.items()
            if rule.matches(view)
        ]

    def _stream_line(
        self, payload: dict[str, Any], matched: list[dict[str, str]], conn: _StreamConn
    ) -> bytes:
        data, includes = self._shape([payload["data"]], conn.query)
        out: dict[str, Any] = {"data": data[0]}
        if includes:
            out["includes"] = includes
        out["matching_rules"] = matched
        return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _shape(
        self, tweets: list[dict[str, Any]], query: dict[str, list[str]]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Tweets cut to the requested fields, and their ``includes`` for the expansions."""
        expansions = _csv(query, "expansions")
        fields = {"id", "text", "edit_history_tweet_ids"} | _csv(query, "tweet.fields")
        implied = {
            "author_id": "author_id",
            "in_reply_to_user_id": "in_reply_to_user_id",
            "geo.place_id": "geo",
            "entities.mentions.username": "entities",
            "referenced_tweets.id": "referenced_tweets",
        }
        fields |= {f for e, f in implied.items() if e in expansions}
        user_ids: list[str] = []
        place_ids: list[str] = []
        ref_ids: list[str] = []
        by_name = {str(u.get("username", "")).lower(): uid for uid, u in self._users.items()}
        for t in tweets:
            if "author_id" in expansions:
                user_ids.append(str(t.get("author_id")))
            if "in_reply_to_user_id" in expansions and t.get("in_reply_to_user_id"):
                user_ids.append(str(t["in_reply_to_user_id"]))
            if "entities.mentions.username" in expansions:
                for m in _list(_dict(t.get("entities")).get("mentions")):
                    uid = by_name.get(str(_dict(m).get("username", "")).lower())
                    if uid:
                        user_ids.append(uid)
            place_id = _dict(t.get("geo")).get("place_id")
            if "geo.place_id" in expansions and place_id:
                place_ids.append(str(place_id))
            if "referenced_tweets.id" in expansions:
                ref_ids += [str(_dict(r).get("id")) for r in _list(t.get("referenced_tweets"))]
        includes: dict[str, Any] = {}
        ufields = {"id", "name", "username"} | _csv(query, "user.fields")
        users = [
            _pick(self._users[u], ufields) for u in dict.fromkeys(user_ids) if u in self._users
        ]
        if users:
            includes["users"] = users
        pfields = {"id", "full_name"} | _csv(query, "place.fields")
        places = [
            _pick(self._places[p], pfields) for p in dict.fromkeys(place_ids) if p in self._places
        ]
        if places:
            includes["places"] = places
        refs = [
            _pick(self._posts[r].payload["data"], fields)
            for r in dict.fromkeys(ref_ids)
            if r in self._posts
        ]
        if refs:
            includes["tweets"] = refs
        return [_pick(t, fields) for t in tweets], includes

    def _claim_stream(self, conn: _StreamConn, backfill_minutes: int) -> bool:
        """Make ``conn`` the stream connection unless a live one holds it (X allows one).

        A client that just timed out has closed its socket; give the old handler a moment.
        """
        deadline = time.monotonic() + 0.25
        while True:
            with self._lock:
                current = self._stream
                if current is None or not current.alive():
                    self._stream = conn
                    self.stream_connections += 1
                    if self._pending_stall:
                        conn.events.put(("stall", self._pending_stall))
                        self._pending_stall = 0.0
                    if backfill_minutes:
                        since = time.monotonic() - backfill_minutes * 60
                        for pid in sorted(self._posts, key=_num):
                            stored = self._posts[pid]
                            matched = self._matching_rules(stored.payload["data"])
                            if stored.published >= since and matched:
                                line = self._stream_line(stored.payload, matched, conn)
                                conn.events.put(("line", line))
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _release_stream(self, conn: _StreamConn) -> None:
        with self._lock:
            if self._stream is conn:
                self._stream = None

    def _take_failure(self, path: str) -> tuple[int, Any, dict[str, str]] | None:
        """The next injected failure for ``path``: (status, body, headers), or None."""
        with self._lock:
            for f in self._failures:
                if path.startswith(f.prefix):
                    f.count -= 1
                    if f.count <= 0:
                        self._failures.remove(f)
                    return f.status, problem(f.status) if f.body is None else f.body, f.headers
        return None

    def _window(self, key: str) -> _Window:
        now = time.time()
        w = self._windows.get(key)
        if w is None or now >= w.reset:
            limit = self._rate_config.get(key, DEFAULT_RATE_LIMIT)
            w = self._windows[key] = _Window(limit, now + self.rate_window)
        return w

    def _rate_headers(self, key: str, count: bool = True) -> dict[str, str]:
        with self._lock:
            w = self._window(key)
            if count:
                w.used += 1
            return {
                "x-rate-limit-limit": str(w.limit),
                "x-rate-limit-remaining": str(max(0, w.limit - w.used)),
                "x-rate-limit-reset": str(int(w.reset)),
            }

    def _rate(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count a request to ``key``: whether it is within the limit, and the headers."""
        with self._lock:
            over = self._window(key).used >= self._window(key).limit
            return not over, self._rate_headers(key, count=not over)

    def _check_auth(self, header: str, accepts: str) -> tuple[int, dict[str, Any]] | None:
        """None when ``header`` may call an endpoint accepting ``accepts``; else the error."""
        scheme, _, credentials = header.partition(" ")
        if scheme == "Bearer" and credentials.strip():
            if self.bearer_token is not None and credentials.strip() != self.bearer_token:
                return 401, problem(401)
            if accepts == "user" and self.bearer_token is not None:
                return 403, _unsupported_auth(
                    "OAuth 2.0 Application-Only", "OAuth 1.0a User Context, OAuth 2.0 User Context"
                )
            return None
        if (
            scheme == "OAuth"
            and "oauth_consumer_key" in credentials
            and "oauth_signature" in credentials
        ):
            if accepts == "app":
                return 403, _unsupported_auth(
                    "OAuth 1.0a User Context", "OAuth 2.0 Application-Only"
                )
            return None
        return 401, problem(401)

    # -- the X API endpoints: (status, body) from query, JSON body and path parameters --

    def _api_rules_get(self, query: Query, body: Any, **_: str) -> Reply:
        ids = _csv(query, "ids")
        with self._lock:
            rules = [r for r in self.rules() if not ids or r["id"] in ids]
        meta: dict[str, Any] = {"sent": x_time(datetime.now(UTC)), "result_count": len(rules)}
        return 200, ({"data": rules, "meta": meta} if rules else {"meta": meta})

    def _api_rules_post(self, query: Query, body: Any, **_: str) -> Reply:
        dry_run = (_first(query, "dry_run") or "").lower() == "true"  # requests sends "True"
        if not isinstance(body, dict) or ("add" in body) == ("delete" in body):
            return 400, {**_INVALID_REQUEST, "errors": [{"message": "Send one of add, delete"}]}
        sent = x_time(datetime.now(UTC))
        with self._lock:
            if "delete" in body:
                return self._delete_rules(body["delete"], dry_run, sent)
            return self._add_rules(body["add"], dry_run, sent)

    def _add_rules(self, add: Any, dry_run: bool, sent: str) -> Reply:
        if not isinstance(add, list) or not all(isinstance(r, dict) for r in add):
            return 400, {**_INVALID_REQUEST, "errors": [{"message": "add must be a list"}]}
        errors: list[dict[str, Any]] = []
        valid: list[tuple[str, str | None, Rule]] = []
        existing = {v: rid for rid, (v, _, _) in self._rules.items()}
        for item in add:
            value, tag = str(item.get("value") or ""), item.get("tag")
            if value in existing:
                errors.append(
                    {
                        "value": value,
                        "id": existing[value],
                        "title": "DuplicateRule",
                        "type": _PROBLEM + "duplicate-rules",
                    }
                )
                continue
            try:
                valid.append((value, str(tag) if tag else None, parse_rule(value)))
            except RuleSyntaxError as exc:
                errors.append(
                    {
                        "value": value,
                        "details": [str(exc)],
                        "detail": str(exc),
                        "title": "UnprocessableEntity",
                        "type": _PROBLEM + "invalid-rules",
                    }
                )
        created: list[dict[str, str]] = []
        if not errors:  # X creates all of a request's rules or none of them
            for value, tag, rule in valid:
                rid = self._next_id()
                created.append(_rule_json(rid, value, tag))
                if not dry_run:
                    self._rules[rid] = (value, tag, rule)
        # a dry run reports what would happen, and changes nothing
        summary = {
            "created": len(created),
            "not_created": len(add) - len(created),
            "valid": len(valid),
            "invalid": len(errors),
        }
        out: dict[str, Any] = {"meta": {"sent": sent, "summary": summary}}
        if created:
            out["data"] = created
        if errors:
            out["errors"] = errors
        return (201 if created and not dry_run else 200), out

    def _delete_rules(self, delete: Any, dry_run: bool, sent: str) -> Reply:
        if not isinstance(delete, dict):
            return 400, {**_INVALID_REQUEST, "errors": [{"message": "delete must be an object"}]}
        ids = [str(i) for i in delete.get("ids") or []]
        by_value = {v: rid for rid, (v, _, _) in self._rules.items()}
        ids += [by_value.get(str(v), str(v)) for v in delete.get("values") or []]
        found = [i for i in ids if i in self._rules]
        errors = [
            {
                "value": i,
                "details": ["Rule does not exist"],
                "title": "Invalid Request",
                "type": _PROBLEM + "invalid-request",
            }
            for i in ids
            if i not in self._rules
        ]
        if not dry_run:
            for i in found:
                del self._rules[i]
        summary = {"deleted": len(found), "not_deleted": len(ids) - len(found)}
        out: dict[str, Any] = {"meta": {"sent": sent, "summary": summary}}
        if errors:
            out["errors"] = errors
        return 200, out

    def _api_me(self, query: Query, body: Any, **_: str) -> Reply:
        return self._user_reply(self.bot_user_id, query)

    def _api_user_by_name(self, query: Query, body: Any, username: str = "", **_: str) -> Reply:
        with self._lock:
            uid = next(
                (
                    i
                    for i, u in self._users.items()
                    if u.get("username", "").lower() == username.lower()
                ),
                None,
            )
        if uid is None:
            return 200, {
                "errors": [
                    {
                        "value": username,
                        "detail": f"Could not find user with username: [{username}].",
                        "title": "Not Found Error",
                        "resource_type": "user",
                        "parameter": "username",
                        "resource_id": username,
                        "type": _PROBLEM + "resource-not-found",
                    }
                ]
            }
        return self._user_reply(uid, query)

    def _user_reply(self, uid: str, query: Query) -> Reply:
        with self._lock:
            user = _pick(self._users[uid], {"id", "name", "username"} | _csv(query, "user.fields"))
        return 200, {"data": user}

    def _api_mentions(self, query: Query, body: Any, id: str = "", **_: str) -> Reply:
        with self._lock:
            name = str(self._users.get(id, {}).get("username", "")).lower()
            posts = [
                s.payload["data"]
                for s in self._posts.values()
                if name
                and str(s.payload["data"].get("author_id")) != id
                and name in TweetView(s.payload["data"], self._users).mentions
            ]
            return self._timeline(posts, query)

    def _api_user_tweets(self, query: Query, body: Any, id: str = "", **_: str) -> Reply:
        with self._lock:
            posts = [
                s.payload["data"]
                for s in self._posts.values()
                if str(s.payload["data"].get("author_id")) == id
            ]
            return self._timeline(posts, query)

    def _timeline(self, tweets: list[dict[str, Any]], query: Query) -> Reply:
        """A page of ``tweets``, newest first, with X's paging parameters and ``meta``."""
        raw_max = _first(query, "max_results") or "10"
        if not raw_max.isdigit() or not 5 <= int(raw_max) <= 100:
            msg = f"The `max_results` query parameter value [{raw_max}] is not between 5 and 100"
            return 400, invalid_param("max_results", raw_max, msg)
        bounds: dict[str, int] = {}
        for name in ("since_id", "until_id"):
            raw = _first(query, name)
            if raw is not None:
                if not raw.isdigit():
                    msg = f"The `{name}` query parameter value [{raw}] is not a valid id"
                    return 400, invalid_param(name, raw, msg)
                bounds[name] = int(raw)
        token = _first(query, "pagination_token")
        if token is not None:
            if not re.fullmatch(r"7140[0-9a-z]+", token):
                msg = f"The `pagination_token` query parameter value [{token}] is not valid"
                return 400, invalid_param("pagination_token", token, msg)
            bounds["before"] = int(token[4:], 36)
        selected = sorted(
            (t for t in tweets if _in_bounds(_num(t["id"]), bounds)),
            key=lambda t: _num(t["id"]),
            reverse=True,
        )
        page = selected[: int(raw_max)]
        meta: dict[str, Any] = {"result_count": len(page)}
        if not page:
            return 200, {"meta": meta}
        meta["newest_id"], meta["oldest_id"] = page[0]["id"], page[-1]["id"]
        if len(selected) > len(page):
            meta["next_token"] = "7140" + _b36(max(0, _num(page[-1]["id"])))
        data, includes = self._shape(page, query)
        out: dict[str, Any] = {"data": data}
        if includes:
            out["includes"] = includes
        out["meta"] = meta
        return 200, out

    def _api_create_tweet(self, query: Query, body: Any, **_: str) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return 400, {**_INVALID_REQUEST, "errors": [{"message": "text is required"}]}
        text = body["text"]
        if not text.strip():
            return 400, {**_INVALID_REQUEST, "errors": [{"message": "text must not be empty"}]}
        if parse_tweet(text).weightedLength > 280:
            return 403, problem(403, "Your Tweet text is too long.", "Forbidden")
        reply_to = str((body.get("reply") or {}).get("in_reply_to_tweet_id") or "") or None
        with self._lock:
            if any(self._posts[i].payload["data"]["text"] == text for i in self._bot_posts):
                return 403, problem(403, DUPLICATE_CONTENT, "Forbidden")
            parent = self._posts.get(reply_to) if reply_to else None
            if reply_to and parent is None:
                return 403, problem(
                    403,
                    "You attempted to reply to a Tweet that is deleted or not visible to you.",
                    "Forbidden",
                )
            bot = self._users[self.bot_user_id]
            post_id = self._next_id()
            payload = tweet_payload(
                text,
                post_id=post_id,
                author_id=self.bot_user_id,
                username=bot["username"],
                name=bot["name"],
                in_reply_to=reply_to,
                in_reply_to_user_id=parent.payload["data"].get("author_id") if parent else None,
                conversation_id=parent.payload["data"].get("conversation_id") if parent else None,
            )
            self._store(payload, by_bot=True)
        return 201, {"data": {"id": post_id, "text": text, "edit_history_tweet_ids": [post_id]}}


def _in_bounds(n: int, bounds: dict[str, int]) -> bool:
    return (
        n > bounds.get("since_id", -2)
        and n < bounds.get("until_id", 1 << 64)
        and n < bounds.get("before", 1 << 64)
    )


def _pick(obj: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in obj.items() if k in keys}


def _rule_json(rid: str, value: str, tag: str | None) -> dict[str, str]:
    out = {"id": rid, "value": value}
    if tag:
        out["tag"] = tag
    return out


# -- HTTP ---------------------------------------------------------------------------------------

# (method, path pattern, rate-limit key, auth it accepts: app | user | any, handler)
_ROUTES: list[tuple[str, re.Pattern[str], str, str, str]] = [
    (m, re.compile(p + r"\Z"), f"{m} {key}", auth, fn)
    for m, p, key, auth, fn in [
        ("GET", r"/2/tweets/search/stream", "/2/tweets/search/stream", "app", "stream"),
        (
            "GET",
            r"/2/tweets/search/stream/rules",
            "/2/tweets/search/stream/rules",
            "app",
            "_api_rules_get",
        ),
        (
            "POST",
            r"/2/tweets/search/stream/rules",
            "/2/tweets/search/stream/rules",
            "app",
            "_api_rules_post",
        ),
        ("GET", r"/2/users/me", "/2/users/me", "user", "_api_me"),
        (
            "GET",
            r"/2/users/by/username/(?P<username>\w{1,15})",
            "/2/users/by/username/:username",
            "any",
            "_api_user_by_name",
        ),
        ("GET", r"/2/users/(?P<id>\d+)/mentions", "/2/users/:id/mentions", "any", "_api_mentions"),
        ("GET", r"/2/users/(?P<id>\d+)/tweets", "/2/users/:id/tweets", "any", "_api_user_tweets"),
        ("POST", r"/2/tweets", "/2/tweets", "user", "_api_create_tweet"),
    ]
]


def _route(method: str, path: str) -> tuple[str, str, str, dict[str, str]] | None:
    """(rate-limit key, auth accepted, handler name, path parameters) for a request."""
    for m, pattern, key, auth, fn in _ROUTES:
        match = pattern.match(path)
        if match and m == method:
            return key, auth, fn, match.groupdict()
    return None


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that tracks its connections and threads so ``stop`` can end them."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True
        )
        with self._conns_lock:
            self._conns[request] = thread
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # a client that went away mid-request is not the server's error
            if not self.sandbox._stopping.is_set():
                self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._conns_lock:
                self._conns.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)

    def close_all(self, timeout: float) -> None:
        """End every open connection (idle keep-alive ones too) and join their threads."""
        with self._conns_lock:
            conns = dict(self._conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for thread in conns.values():
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 300  # an idle keep-alive connection is closed after this many seconds

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        sb = self.server.sandbox
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path.startswith("/_sandbox"):
            self._control(method, url.path, query, raw)
            return
        route = _route(method, url.path)
        if route is None:
            self._send(404, problem(404, "The requested resource could not be found."), {})
            return
        key, auth, fn, params = route
        failure = sb._take_failure(url.path)
        if failure is not None:
            status, body, headers = failure
            self._send(status, body, {**sb._rate_headers(key, count=False), **headers})
            return
        denied = sb._check_auth(self.headers.get("Authorization") or "", auth)
        if denied is not None:
            self._send(denied[0], denied[1], {})
            return
        allowed, headers = sb._rate(key)
        if not allowed:
            self._send(429, problem(429), headers)
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {**_INVALID_REQUEST, "errors": [{"message": "invalid JSON"}]}, headers)
            return
        if fn == "stream":
            self._stream(query, headers)
            return
        try:
            status, out = getattr(sb, fn)(query, body, **params)
        except Exception:  # a sandbox bug: answer like X's 500 rather than drop the connection
            log.exception("sandbox: %s %s failed", method, url.path)
            status, out = 500, problem(500)
        self._send(status, out, headers)

    def _send(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        if isinstance(body, bytes | bytearray):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    # -- the filtered stream --

    def _stream(self, query: Query, headers: dict[str, str]) -> None:
        sb = self.server.sandbox
        backfill = _first(query, "backfill_minutes")
        if backfill is not None and not (backfill.isdigit() and 1 <= int(backfill) <= 5):
            msg = (
                f"The `backfill_minutes` query parameter value [{backfill}] is not between 1 and 5"
            )
            self._send(400, invalid_param("backfill_minutes", backfill, msg), headers)
            return
        conn = _StreamConn(self.connection, query)
        if not sb._claim_stream(conn, int(backfill or 0)):
            self._send(429, TOO_MANY_CONNECTIONS, headers)
            return
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self._pump(conn)
        except OSError:
            pass  # the client went away
        finally:
            conn.closed.set()
            sb._release_stream(conn)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _pump(self, conn: _StreamConn) -> None:
        """Send queued lines, and keep-alives when idle, until dropped, stopped or gone."""
        sb = self.server.sandbox
        next_keepalive = time.monotonic() + sb.keepalive_interval
        while True:
            if sb._stopping.is_set():
                self._chunk(b"")  # a clean end of the chunked body
                return
            if not conn.alive():
                return
            wait = min(0.05, max(0.0, next_keepalive - time.monotonic()))
            try:
                kind, arg = conn.events.get(timeout=wait)
            except queue.Empty:
                if time.monotonic() >= next_keepalive:
                    self._chunk(b"\r\n")
                    next_keepalive = time.monotonic() + sb.keepalive_interval
                continue
            if kind == "line":
                self._chunk(arg + b"\r\n")
            elif kind == "drop":
                conn.sock.shutdown(socket.SHUT_RDWR)  # mid-body: the client sees a broken stream
                return
            elif kind == "stall":
                until = time.monotonic() + arg
                while time.monotonic() < until and conn.alive() and not sb._stopping.is_set():
                    time.sleep(0.02)
            next_keepalive = time.monotonic() + sb.keepalive_interval

    # -- the control surface over HTTP --

    def _control(self, method: str, path: str, query: Query, raw: bytes) -> None:
        sb = self.server.sandbox
        action = path.removeprefix("/_sandbox").strip("/")
        try:
            args = json.loads(raw) if raw else {}
            if not isinstance(args, dict):
                raise ValueError("the body must be a JSON object")
            status, out = _control_action(sb, method, action, args)
        except (ValueError, TypeError, KeyError) as exc:
            status, out = 400, {"error": f"{type(exc).__name__}: {exc}"}
        self._send(status, out, {})


def _control_action(sb: SandboxServer, method: str, action: str, args: dict[str, Any]) -> Reply:
    """One ``/_sandbox/<action>`` request → (status, JSON body)."""
    if method == "GET" and action in ("", "state"):
        return 200, {**sb.state(), "actions": CONTROL_ACTIONS}
    if method == "GET" and action == "posts_by_bot":
        return 200, {"data": sb.posts_by_bot()}
    if method != "POST" or action not in CONTROL_ACTIONS:
        return 404, {
            "error": f"no control action {method} /_sandbox/{action}",
            "actions": CONTROL_ACTIONS,
        }
    if action == "publish":
        if isinstance(args.get("data"), dict):
            return 201, {"id": sb.publish(args)}
        kwargs = dict(args)
        if isinstance(kwargs.get("created_at"), str):
            kwargs["created_at"] = datetime.fromisoformat(
                kwargs["created_at"].replace("Z", "+00:00")
            )
        if kwargs.get("coordinates") is not None:
            lat, lon = kwargs["coordinates"]
            kwargs["coordinates"] = (float(lat), float(lon))
        return 201, {"id": sb.publish(**kwargs)}
    if action == "fail_next":
        sb.fail_next(
            str(args["path_prefix"]),
            int(args["status"]),
            int(args.get("count", 1)),
            args.get("headers"),
            args.get("body"),
        )
    elif action == "drop_stream":
        return 200, {"dropped": sb.drop_stream()}
    elif action == "stall_stream":
        sb.stall_stream(float(args["seconds"]))
    elif action == "send_raw_line":
        line = base64.b64decode(args["base64"]) if "base64" in args else str(args["line"]).encode()
        return 200, {"sent": sb.send_raw_line(line)}
    elif action == "rate_limit":
        sb.set_rate_limit(str(args["endpoint"]), int(args["limit"]))
    elif action == "reset":
        sb.reset()
    return 200, {"ok": True}


CONTROL_ACTIONS = [
    "publish",
    "fail_next",
    "drop_stream",
    "stall_stream",
    "send_raw_line",
    "rate_limit",
    "reset",
]


def main(argv: list[str] | None = None) -> None:
    """``python -m bot.channels.sandbox --port N``: serve in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--bot-user-id", default=DEFAULT_BOT_USER_ID)
    parser.add_argument("--bot-handle", default=DEFAULT_BOT_HANDLE)
    parser.add_argument("--bearer-token", default=None)
    parser.add_argument("--keepalive", type=float, default=20.0, help="seconds between keep-alives")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = SandboxServer(
        opts.host,
        opts.port,
        bot_user_id=opts.bot_user_id,
        bot_handle=opts.bot_handle,
        bearer_token=opts.bearer_token,
        keepalive_interval=opts.keepalive,
    )
    with server:
        log.info("X API sandbox on %s (control: %s/_sandbox/)", server.base_url, server.base_url)
        print(f"X API sandbox listening on {server.base_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
