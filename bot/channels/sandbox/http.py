"""The sandbox over HTTP: the threading server, request routing, the filtered stream and the
control surface under ``/_sandbox/``.
"""

from __future__ import annotations

import base64
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
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from bot.channels.sandbox import endpoints
from bot.channels.sandbox.endpoints import Endpoint, Query, Reply, first_value
from bot.channels.sandbox.errors import (
    INVALID_REQUEST,
    TOO_MANY_CONNECTIONS,
    invalid_param,
    problem,
)

if TYPE_CHECKING:
    from bot.channels.sandbox.server import SandboxServer

log = logging.getLogger(__name__)


class StreamConn:
    """One open filtered-stream connection: its socket, query and queue of events to send."""

    def __init__(self, sock: socket.socket, query: Query) -> None:
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


# (method, path pattern, rate-limit key, auth it accepts: app | user | any, endpoint); the
# filtered stream (endpoint None) is served by the handler itself
_ROUTES: list[tuple[str, re.Pattern[str], str, str, Endpoint | None]] = [
    (m, re.compile(p + r"\Z"), f"{m} {key}", auth, fn)
    for m, p, key, auth, fn in [
        ("GET", r"/2/tweets/search/stream", "/2/tweets/search/stream", "app", None),
        (
            "GET",
            r"/2/tweets/search/stream/rules",
            "/2/tweets/search/stream/rules",
            "app",
            endpoints.rules_get,
        ),
        (
            "POST",
            r"/2/tweets/search/stream/rules",
            "/2/tweets/search/stream/rules",
            "app",
            endpoints.rules_post,
        ),
        ("GET", r"/2/users/me", "/2/users/me", "user", endpoints.me),
        (
            "GET",
            r"/2/users/by/username/(?P<username>\w{1,15})",
            "/2/users/by/username/:username",
            "any",
            endpoints.user_by_name,
        ),
        (
            "GET",
            r"/2/users/(?P<id>\d+)/mentions",
            "/2/users/:id/mentions",
            "any",
            endpoints.mentions,
        ),
        (
            "GET",
            r"/2/users/(?P<id>\d+)/tweets",
            "/2/users/:id/tweets",
            "any",
            endpoints.user_tweets,
        ),
        ("POST", r"/2/tweets", "/2/tweets", "user", endpoints.create_tweet),
    ]
]


def _route(method: str, path: str) -> tuple[str, str, Endpoint | None, dict[str, str]] | None:
    """(rate-limit key, auth accepted, endpoint, path parameters) for a request."""
    for m, pattern, key, auth, fn in _ROUTES:
        match = pattern.match(path)
        if match and m == method:
            return key, auth, fn, match.groupdict()
    return None


class SandboxHTTPServer(ThreadingHTTPServer):
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
    server: SandboxHTTPServer
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
            self._send(400, {**INVALID_REQUEST, "errors": [{"message": "invalid JSON"}]}, headers)
            return
        if fn is None:
            self._stream(query, headers)
            return
        try:
            status, out = fn(sb, query, body, **params)
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
        backfill = first_value(query, "backfill_minutes")
        if backfill is not None and not (backfill.isdigit() and 1 <= int(backfill) <= 5):
            msg = (
                f"The `backfill_minutes` query parameter value [{backfill}] is not between 1 and 5"
            )
            self._send(400, invalid_param("backfill_minutes", backfill, msg), headers)
            return
        conn = StreamConn(self.connection, query)
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

    def _pump(self, conn: StreamConn) -> None:
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
