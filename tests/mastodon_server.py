"""A loopback fake Mastodon server for tests: real HTTP, the few endpoints triagebot uses.

Serves ``/api/v1/instance``, ``/api/v2/instance``, ``/api/v1/notifications`` (newest first,
``since_id``/``max_id``/``min_id``/``limit``/``types[]``, and Link headers as Mastodon sends
them), ``/api/v1/streaming/health`` and ``/api/v1/streaming/user`` (server-sent events). Tests
queue errors for the next notification requests, push events into the stream, drop it, or make
the streaming API unavailable.
"""

from __future__ import annotations

import json
import queue
import select
import socket
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

TOKEN = "t"
_DROP = None  # a stream "event" that closes the connection


class FakeMastodon:
    """The server's state; ``url`` is its base URL once started."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.notifications: list[dict[str, Any]] = []
        self.errors: deque[tuple[int, dict[str, str]]] = deque()
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.stream_status = 200  # what /api/v1/streaming/user answers
        self.stream_healthy = True
        self.stream_connects = 0
        self.polls_at_connect: list[int] = []  # notification requests before each connect
        self._stream_events: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = False  # close() waits for every handler, streams included
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeMastodon:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    # -- what tests do --

    def add(self, *notifications: dict[str, Any]) -> None:
        """Make notifications visible to polling."""
        with self.lock:
            self.notifications.extend(notifications)

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` notification requests with ``status``."""
        with self.lock:
            self.errors.extend([(status, headers or {})] * times)

    def rate_limit_next(self, reset_in: float) -> None:
        """Answer the next notification request 429, with the reset ``reset_in`` s from now."""
        reset = datetime.now(UTC) + timedelta(seconds=reset_in)
        self.fail_next(
            429,
            headers={
                "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset.isoformat(timespec="milliseconds").replace(
                    "+00:00", "Z"
                ),
            },
        )

    def push(self, notification: dict[str, Any], *, stream_only: bool = False) -> None:
        """Send a notification through the stream; like Mastodon, polling sees it too."""
        if not stream_only:
            self.add(notification)
        self._stream_events.put(("notification", json.dumps(notification)))

    def push_event(self, event: str, data: str) -> None:
        self._stream_events.put((event, data))

    def drop_stream(self) -> None:
        """Close the open stream connection, as a proxy restart would."""
        self._stream_events.put(_DROP)

    def wait_stream_connects(self, n: int, timeout: float = 5.0) -> bool:
        """Wait until the stream endpoint has been connected to ``n`` times in all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.stream_connects >= n:
                    return True
            time.sleep(0.01)
        return False

    def polls_since_connect(self, n: int) -> int:
        """Notification requests made after the ``n``-th stream connection (1-based)."""
        with self.lock:
            before = self.polls_at_connect[n - 1]
            return sum(p == "/api/v1/notifications" for p, _ in self.requests) - before

    def calls(self, path: str) -> list[dict[str, list[str]]]:
        with self.lock:
            return [q for p, q in self.requests if p == path]

    # -- what the handler asks --

    def instance_v1(self) -> dict[str, Any]:
        host = urlsplit(self.url).netloc
        return {
            "uri": host,
            "title": "Fake",
            "version": "4.3.0",
            "urls": {"streaming_api": f"ws://{host}"},
        }

    def instance_v2(self) -> dict[str, Any]:
        host = urlsplit(self.url).netloc
        public = {"local": "public", "remote": "public"}
        return {
            "domain": host,
            "title": "Fake",
            "version": "4.3.0",
            "api_versions": {"mastodon": 2},
            "configuration": {
                "urls": {"streaming": f"ws://{host}"},
                "timelines_access": {
                    "live_feeds": public,
                    "hashtag_feeds": public,
                    "trending_link_feeds": public,
                },
            },
        }

    def page(self, query: dict[str, list[str]]) -> tuple[list[dict[str, Any]], str]:
        """One page of notifications, newest first, and its Link header."""

        def num(name: str) -> int | None:
            return int(query[name][0]) if name in query else None

        since, max_id, min_id = num("since_id"), num("max_id"), num("min_id")
        limit = min(num("limit") or 40, 80)
        types = query.get("types[]")
        with self.lock:
            items = sorted(self.notifications, key=lambda n: int(n["id"]), reverse=True)
        items = [
            n
            for n in items
            if (not types or n.get("type") in types)
            and (since is None or int(n["id"]) > since)
            and (max_id is None or int(n["id"]) < max_id)
            and (min_id is None or int(n["id"]) > min_id)
        ]
        # min_id pages start right after min_id; the others start at the newest.
        items = items[-limit:] if min_id is not None else items[:limit]
        link = ""
        if items:
            base = f"{self.url}/api/v1/notifications"
            extra = [("types[]", t) for t in types or ()]
            nxt = urlencode([("max_id", items[-1]["id"]), *extra])
            prev = urlencode([("min_id", items[0]["id"]), *extra])
            link = f'<{base}?{nxt}>; rel="next", <{base}?{prev}>; rel="prev"'
        return items, link


class _Server(ThreadingHTTPServer):
    fake: FakeMastodon


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeMastodon/1.0"

    @property
    def fake(self) -> FakeMastodon:
        assert isinstance(self.server, _Server)
        return self.server.fake

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _send(
        self, status: int, body: Any, headers: dict[str, str] | None = None, ctype: str = ""
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype or "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        fake = self.fake
        with fake.lock:
            fake.requests.append((parts.path, query))
        if parts.path in ("/api/v1/instance", "/api/v2/instance"):
            v1 = parts.path == "/api/v1/instance"
            self._send(200, fake.instance_v1() if v1 else fake.instance_v2())
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, {"error": "The access token is invalid"})
            return
        if parts.path == "/api/v1/notifications":
            with fake.lock:
                error = fake.errors.popleft() if fake.errors else None
            if error is not None:
                self._send(error[0], {"error": f"fake error {error[0]}"}, error[1])
                return
            items, link = fake.page(query)
            self._send(200, items, {"Link": link} if link else None)
        elif parts.path == "/api/v1/streaming/health":
            healthy = fake.stream_healthy
            self._send(200 if healthy else 503, b"OK" if healthy else b"down", ctype="text/plain")
        elif parts.path == "/api/v1/streaming/user":
            self._stream()
        else:
            self._send(404, {"error": "Record not found"})

    def _stream(self) -> None:
        fake = self.fake
        with fake.lock:
            fake.stream_connects += 1
            fake.polls_at_connect.append(
                sum(p == "/api/v1/notifications" for p, _ in fake.requests)
            )
            status = fake.stream_status
        if status != 200:
            self._send(status, {"error": "streaming unavailable"})
            return
        # HTTP/1.0 without Content-Length: the body runs until the connection closes.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(b":)\n")
        self.wfile.flush()
        last_beat = time.monotonic()
        while not fake._stopping.is_set() and not self._client_gone():
            try:
                item = fake._stream_events.get(timeout=0.05)
            except queue.Empty:
                if time.monotonic() - last_beat > 1.0:
                    self.wfile.write(b":thump\n")
                    self.wfile.flush()
                    last_beat = time.monotonic()
                continue
            if item is _DROP:
                return
            event, data = item
            self.wfile.write(f"event: {event}\ndata: {data}\n\n".encode())
            self.wfile.flush()

    def _client_gone(self) -> bool:
        """Whether the client closed its end, so no queued event is lost to a dead socket."""
        sock: socket.socket = self.connection
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
