"""The sandbox server: its state (posts, users, rules, failures, rate windows, the stream) and
the Python control surface tests and the demo drive it through.

The HTTP side lives in :mod:`bot.channels.sandbox.http`, the X API endpoints in
:mod:`bot.channels.sandbox.endpoints`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.channels.sandbox.endpoints import csv_values
from bot.channels.sandbox.errors import problem, unsupported_auth
from bot.channels.sandbox.http import SandboxHTTPServer, StreamConn
from bot.channels.sandbox.payload import (
    DEFAULT_BOT_HANDLE,
    DEFAULT_BOT_USER_ID,
    as_dict,
    as_list,
    id_number,
    pick,
    tweet_payload,
)
from bot.channels.sandbox.rules import Rule, TweetView, rule_json

DEFAULT_RATE_LIMIT = 10_000  # requests per window and endpoint: generous unless configured
TWEPOCH_MS = 1_288_834_974_657  # X's snowflake epoch


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
        self._httpd = SandboxHTTPServer((host, port), self)
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
        self._stream: StreamConn | None = None
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
            return [rule_json(rid, v, t) for rid, (v, t, _) in self._rules.items()]

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

    # -- internals used by the HTTP handler and the endpoints --

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
        includes = as_dict(payload.get("includes"))
        for user in as_list(includes.get("users")):
            if isinstance(user, dict) and user.get("id"):
                self._users.setdefault(str(user["id"]), {}).update(user)  # latest profile
        for place in as_list(includes.get("places")):
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
        self, payload: dict[str, Any], matched: list[dict[str, str]], conn: StreamConn
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
        expansions = csv_values(query, "expansions")
        fields = {"id", "text", "edit_history_tweet_ids"} | csv_values(query, "tweet.fields")
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
                for m in as_list(as_dict(t.get("entities")).get("mentions")):
                    uid = by_name.get(str(as_dict(m).get("username", "")).lower())
                    if uid:
                        user_ids.append(uid)
            place_id = as_dict(t.get("geo")).get("place_id")
            if "geo.place_id" in expansions and place_id:
                place_ids.append(str(place_id))
            if "referenced_tweets.id" in expansions:
                ref_ids += [str(as_dict(r).get("id")) for r in as_list(t.get("referenced_tweets"))]
        includes: dict[str, Any] = {}
        ufields = {"id", "name", "username"} | csv_values(query, "user.fields")
        users = [pick(self._users[u], ufields) for u in dict.fromkeys(user_ids) if u in self._users]
        if users:
            includes["users"] = users
        pfields = {"id", "full_name"} | csv_values(query, "place.fields")
        places = [
            pick(self._places[p], pfields) for p in dict.fromkeys(place_ids) if p in self._places
        ]
        if places:
            includes["places"] = places
        refs = [
            pick(self._posts[r].payload["data"], fields)
            for r in dict.fromkeys(ref_ids)
            if r in self._posts
        ]
        if refs:
            includes["tweets"] = refs
        return [pick(t, fields) for t in tweets], includes

    def _claim_stream(self, conn: StreamConn, backfill_minutes: int) -> bool:
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
                        for pid in sorted(self._posts, key=id_number):
                            stored = self._posts[pid]
                            matched = self._matching_rules(stored.payload["data"])
                            if stored.published >= since and matched:
                                line = self._stream_line(stored.payload, matched, conn)
                                conn.events.put(("line", line))
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _release_stream(self, conn: StreamConn) -> None:
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
                return 403, unsupported_auth(
                    "OAuth 2.0 Application-Only", "OAuth 1.0a User Context, OAuth 2.0 User Context"
                )
            return None
        if (
            scheme == "OAuth"
            and "oauth_consumer_key" in credentials
            and "oauth_signature" in credentials
        ):
            if accepts == "app":
                return 403, unsupported_auth(
                    "OAuth 1.0a User Context", "OAuth 2.0 Application-Only"
                )
            return None
        return 401, problem(401)
