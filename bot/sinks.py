"""Loopback sinks that stand in for an SMTP relay and SMS/chat webhooks (demo and tests).

``SmtpSink`` is an aiosmtpd Controller on 127.0.0.1 keeping every message it accepts; stop it
to make "SMTP down" (connection refused). ``WebhookSink`` is a ThreadingHTTPServer keeping
every JSON body it *receives* (before answering), and told per request what to do: answer
200, answer 500, or hang until released - a provider that got the bytes but whose answer
never came back.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class _SmtpHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.sink.lock:
            self.sink.messages.append(msg)
            self.sink.received_at.append(time.time())
            self.sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpSink:
    """A real SMTP server on 127.0.0.1 collecting messages; ``stop()`` makes it "down"."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.received_at: list[float] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> SmtpSink:
        self._controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        return wait_until(lambda: len(self.messages) >= n, timeout)

    @staticmethod
    def html(msg: EmailMessage) -> str:
        part = msg.get_body(("html",))
        return part.get_content() if part is not None else ""

    @staticmethod
    def text(msg: EmailMessage) -> str:
        part = msg.get_body(("plain",))
        return part.get_content() if part is not None else ""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    answered: int | None = None  # HTTP status sent back, None if it hung


@dataclass
class WebhookSink:
    """A JSON webhook receiver on 127.0.0.1 that answers 200, 500 or hangs, on demand."""

    received: list[Received] = field(default_factory=list)
    plan: deque[str] = field(default_factory=deque)  # per request: "ok" | "fail" | "hang"
    hung: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    hang_seconds: float = 30.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                rec = Received(self.path, dict(self.headers.items()), body, time.time())
                with sink.lock:
                    sink.received.append(rec)
                    action = sink.plan.popleft() if sink.plan else "ok"
                if action == "hang":
                    sink.hung.set()
                    sink.release.wait(sink.hang_seconds)
                    return  # the client never gets an answer: it times out or dies
                status = 500 if action == "fail" else 200
                rec.answered = status
                payload = b'{"ok": true}' if status == 200 else b'{"error": "boom"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def url(self, path: str = "/hook", scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.split("?", 1)[0] == path]

    def accepted(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [
                r
                for r in self.received
                if r.answered == 200 and (path is None or r.path.split("?", 1)[0] == path)
            ]

    def wait_for(self, n: int, path: str | None = None, timeout: float = 10.0) -> bool:
        def enough() -> bool:
            with self.lock:
                rows = [r for r in self.received if path is None or r.path.startswith(path)]
            return len(rows) >= n

        return wait_until(enough, timeout)
