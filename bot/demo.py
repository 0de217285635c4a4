"""``triagebot demo``: the bot end to end on the sample bank, on one machine, with no accounts.

Starts an embedded Redis (or uses ``REDIS_URL``), the local X API sandbox, a loopback SMTP
server and a webhook sink standing in for SMS and chat; runs the production processes
(``triagebot listen``, ``triage``, ``worker``) against them; replays the recorded morning in
``config/demo/morning.jsonl`` into the sandbox, faster than life; shows progress, then a
summary and a few of the pages managers received.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rq import Queue
from rq.registry import StartedJobRegistry

from bot.channels.sandbox import SandboxServer
from bot.config import Settings
from bot.errors import TriageError
from bot.sinks import SmtpSink, WebhookSink
from bot.store import Store, embedded, socket_url
from bot.store.incidents import IncidentStore


@dataclass(frozen=True)
class DemoPost:
    at: datetime
    kwargs: dict[str, Any]
    reply_to_index: int | None


def last_monday_morning(now: datetime, tz: str = "Europe/London") -> datetime:
    """08:00 on the most recent Monday whose morning (to 12:00) is over, in ``tz``."""
    local = now.astimezone(ZoneInfo(tz))
    day = local.date() - timedelta(days=local.weekday())
    if datetime.combine(day, dtime(12, 0), ZoneInfo(tz)) > local:
        day -= timedelta(days=7)
    return datetime.combine(day, dtime(8, 0), ZoneInfo(tz))


def load_morning(path: Path, now: datetime | None = None) -> list[DemoPost]:
    """The recorded morning (see config/demo/README.md), moved to the last Monday morning.

    Posts keep their times of day; the date moves so that they are in the past, as a real
    stream's are: grouping, spike rates and who is on duty follow the posts' own times.
    """
    posts = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            at = datetime.fromisoformat(d["at"].replace("Z", "+00:00"))
            kwargs: dict[str, Any] = {
                "text": d["text"],
                "username": d["handle"],
                "name": d.get("name") or d["handle"],
                "location": d.get("profile_location") or "",
                "created_at": at,
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: line {n}: {exc}") from None
        if d.get("coordinates"):
            kwargs["coordinates"] = tuple(d["coordinates"])
        if d.get("place"):
            kwargs["place"] = d["place"]
        posts.append(DemoPost(at, kwargs, d.get("reply_to_index")))
    if not posts:
        raise ValueError(f"{path}: no posts")
    start = posts[0].at.astimezone(ZoneInfo("Europe/London"))
    target = last_monday_morning(now or datetime.now(UTC))
    shift = datetime.combine(target.date(), start.timetz()) - start
    return [
        DemoPost(p.at + shift, {**p.kwargs, "created_at": p.at + shift}, p.reply_to_index)
        for p in posts
    ]


class Demo:
    """The demo's servers and processes; use as a context manager."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.token = secrets.token_urlsafe(16)  # the sandbox's app token for this run
        self.sandbox = SandboxServer(bot_handle=settings.company.x_handle, bearer_token=self.token)
        self.smtp = SmtpSink()
        self.hooks = WebhookSink()
        self.client: redis.Redis | None = None
        self.published = 0
        self._last_length = -1
        self._last_change = 0.0

    # -- set-up ----------------------------------------------------------------------------
    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "logs").mkdir(exist_ok=True)
        if self.settings.redis.url:
            self.client = redis.Redis.from_url(self.settings.redis.url)
            self.redis_url = self.settings.redis.url
            if self.client.dbsize():
                raise TriageError(
                    "the demo needs an empty Redis database and REDIS_URL's is not: unset "
                    "REDIS_URL to use an embedded Redis, or point it at an empty database"
                )
        else:
            data = self.settings.model_copy(
                update={
                    "redis": self.settings.redis.model_copy(
                        update={"data_dir": self.folder / "redis"}
                    )
                }
            )
            self.client = embedded(data)
            self.redis_url = socket_url(self.client) or ""
            self.client.flushdb()  # the demo's own embedded database: a fresh morning each run
        self.sandbox.start()
        self.smtp.start()
        self.hooks.start()
        env = self.env()
        for name, args in (
            ("listen", ["listen", "--x", "--no-mastodon"]),
            ("triage", ["triage", "--name", "demo-triage"]),
            ("worker", ["worker"]),
        ):
            log = (self.folder / "logs" / f"{name}.log").open("wb")
            self.procs[name] = subprocess.Popen(  # noqa: S603 - our own CLI
                [sys.executable, "-m", "bot.cli", "-v", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def env(self) -> dict[str, str]:
        """The environment of the demo's processes: every part pointed at a local stand-in."""
        hook = f"json://127.0.0.1:{self.hooks.port}"
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "TRIAGE_CONFIG_DIR": str(self.settings.config_dir),
            "TRIAGE_X__API_BASE_URL": self.sandbox.base_url,
            "TRIAGE_X__MODE": "stream",
            "TRIAGE_X_BEARER_TOKEN": self.token,
            "TRIAGE_SECRET_KEY": secrets.token_urlsafe(32),
            "TRIAGE_INGEST__BATCH_WAIT_MS": "20",
            "TRIAGE_TRIAGE__BLOCK_MS": "200",
            "TRIAGE_NOTIFY__SMTP__HOST": "127.0.0.1",
            "TRIAGE_NOTIFY__SMTP__PORT": str(self.smtp.port),
            "TRIAGE_NOTIFY__SMTP__SECURITY": "none",
            "TRIAGE_NOTIFY__SMTP__AUTH": "false",
            "TRIAGE_NOTIFY__ROUTES__SMS__URL": f"{hook}/sms/{{target}}",
            "TRIAGE_NOTIFY__ROUTES__CHAT__URL": f"{hook}/chat/{{channel}}",
            "TRIAGE_NOTIFY__ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
            "TRIAGE_NOTIFY__BUNDLE_WINDOW_SECONDS": "5",
        }

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.hooks.stop()
        self.smtp.stop()
        self.sandbox.stop()
        if self.client is not None and hasattr(self.client, "_cleanup"):
            self.client._cleanup()

    # -- running ---------------------------------------------------------------------------
    def store(self) -> Store:
        assert self.client is not None
        return Store(self.client, self.settings)

    def publish(self, posts: list[DemoPost], speedup: float, on_tick: Any) -> None:
        """Publish the morning into the sandbox, ``speedup`` times faster than it happened."""
        ids: list[str] = []
        start_wall = time.monotonic()
        first = posts[0].at
        for post in posts:
            due = start_wall + (post.at - first).total_seconds() / speedup
            while (wait := due - time.monotonic()) > 0:
                on_tick()
                time.sleep(min(wait, 0.25))
            kwargs = dict(post.kwargs)
            if post.reply_to_index is not None and post.reply_to_index < len(ids):
                kwargs["in_reply_to"] = ids[post.reply_to_index]
            ids.append(self.sandbox.publish(**kwargs))
            self.published += 1
            self.check_processes()

    def check_processes(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = self.folder / "logs" / f"{name}.log"
                tail = log.read_text(errors="replace")[-2000:]
                raise TriageError(f"demo process '{name}' exited ({proc.returncode}):\n{tail}")

    def figures(self) -> dict[str, int]:
        store = self.store()
        totals = store.totals()
        incidents = IncidentStore(store.r, self.settings.redis.key_prefix)
        states = [incidents.get(i).state for i in incidents.all_ids()]
        return {
            "posts": store.stream_length(),
            "complaints": totals.get("complaints", 0),
            "incidents": len(states),
            "spikes": totals.get("spikes", 0),
            "unroutable": totals.get("unroutable", 0),
            "pages": len(self.smtp.messages) + len(self.hooks.accepted()),
            "acknowledged": sum(s in ("acknowledged", "resolved", "replied") for s in states),
            "resolved": sum(s in ("resolved", "replied") for s in states),
            "replies": len(self.sandbox.posts_by_bot()),
            "dead_letter": store.dead_letter_count(),
        }

    def settled(self) -> bool:
        """Nothing more is arriving, everything that arrived is triaged, and no page is
        waiting to go out now. (Not every published post reaches the stream: only those the
        stream rules match, as on X.)"""
        store = self.store()
        length = store.stream_length()
        if length != self._last_length:
            self._last_length, self._last_change = length, time.monotonic()
            return False
        if time.monotonic() - self._last_change < 2.0:
            return False
        groups = store.r.xinfo_groups(store.stream_key)
        group = next((g for g in groups if g["name"] == b"triage"), None)
        if group is None or group["pending"] or group.get("lag"):
            return False
        if (
            group["last-delivered-id"]
            != store.r.xinfo_stream(store.stream_key)["last-generated-id"]
        ):
            return False
        queue = Queue(self.settings.notify.queue, connection=store.r)
        return queue.count == 0 and StartedJobRegistry(queue=queue).count == 0


def progress_table(fig: dict[str, int], published: int, total: int) -> Table:
    t = Table(title="triagebot demo: a Monday morning at Northbank", show_header=False)
    t.add_row("posts published to X (sandbox)", f"{published}/{total}")
    for key in ("posts", "complaints", "incidents", "spikes", "unroutable", "pages", "dead_letter"):
        t.add_row(key.replace("_", " "), str(fig[key]))
    return t


@contextmanager
def running(settings: Settings, folder: Path) -> Iterator[Demo]:
    demo = Demo(settings, folder)
    try:
        demo.start()
        yield demo
    finally:
        demo.stop()


def run(settings: Settings, *, speedup: float = 240.0, as_json: bool = False) -> dict[str, int]:
    """Run the demo to the end; returns the summary figures."""
    posts = load_morning(settings.config_dir / "demo" / "morning.jsonl")
    console = Console(stderr=as_json)
    folder = settings.path(Path("var/demo"))
    with running(settings, folder) as demo:
        with Live(
            progress_table(demo.figures(), 0, len(posts)),
            console=console,
            refresh_per_second=4,
            transient=as_json,
        ) as live:

            def tick() -> None:
                live.update(progress_table(demo.figures(), demo.published, len(posts)))

            if not demo.sandbox.wait_for_stream(timeout=30):
                demo.check_processes()
                raise TriageError("the listener did not connect to the X sandbox in 30 s")
            demo.publish(posts, speedup, tick)
            deadline = time.monotonic() + 120
            while not demo.settled():
                demo.check_processes()
                tick()
                if time.monotonic() > deadline:
                    console.print("[yellow]still busy after 2 minutes; summarising now[/]")
                    break
                time.sleep(0.25)
            time.sleep(1.0)
            tick()
        console.print()
        fig = demo.figures()
        if not as_json:
            show_pages(console, demo)
    return fig


def show_pages(console: Console, demo: Demo) -> None:
    """A few of the pages managers received, as they read them."""
    sms = [r for r in demo.hooks.accepted() if r.path.startswith("/sms/")][:3]
    for r in sms:
        body = r.body if isinstance(r.body, dict) else {}
        console.rule(f"SMS to {r.path.removeprefix('/sms/')}")
        console.print(body.get("body") or body.get("message") or body)
    for msg in demo.smtp.messages[:1]:
        console.rule(f"email to {msg['To']}: {msg['Subject']}")
        console.print(SmtpSink.text(msg)[:1500])
