"""Complaint-to-page latency, end to end, on this machine.

A complaint enters the stream (``Store.append``), one triage consumer (``build_consumer``, in a
thread of this process) classifies, locates, routes and groups it, and a forking RQ worker
(``python -m bot.cli worker <queue>``, a subprocess, as deployed) sends the page through apprise
to loopback sinks: SMS and chat to a :class:`~bot.sinks.WebhookSink`, email to an
:class:`~bot.sinks.SmtpSink`, the way :mod:`bot.demo` points paging at them.

What is measured: for every incident, the time from the ``Store.append`` of the complaint that
opened it (the one whose triage queued the page) to the first page naming it at a sink. Later
complaints join an incident already queued or paged and cause no page of their own, so they
give no latency sample; they count as lost only if their incident never paged. A page names its
incidents twice over: every console link is signed with the incident id, and the idempotency id
of each route (webhook body ``idempotency_id``, email header ``X-Triage-Page-Id``) is derived
from the delivery, whose members are the incidents it bundles (an SMS carries only its lead
incident's link). The latency is split with the first paging job's RQ timestamps into triage
(appended → job queued), queue (queued → started) and job (started → ended). Escalation pages
(a spike on an incident already paged raises it) are counted as far as they went out before the
last first page; the bench does not wait for them.

Isolation: the bench refuses a Redis database that is not empty. RQ job ids
(``page-<incident>-<step>``) are not namespaced by the key prefix, so a bench in a live
database would collide with real paging jobs. It uses its own key prefix and queue name, and
deletes what it created afterwards. Pages bundle per person within
``notify.bundle_window_seconds``: the bench sets it to 0, so a page waits for no window, but a
job still takes every page owed to its person at that moment into one message.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job

from bot.channels import Batch
from bot.config import Settings
from bot.errors import LinkError, TriageError
from bot.geo.registry import load_registry
from bot.models import Author, Post
from bot.notify import links
from bot.notify.send import idempotency_id
from bot.sinks import SmtpSink, WebhookSink
from bot.store import Store
from bot.store.incidents import IncidentStore
from bot.store.pages import PageStore, parse_member
from workers.pages import page_job_id

CONSOLE = "http://bench.invalid"
_LINK = re.compile(re.escape(CONSOLE) + r"/i/([A-Za-z0-9_.\-]+)")

# Complaint texts by the category they are written for (the model may file a few elsewhere:
# it reads most branch closures as facilities); {b} is a branch name, {n} a number.
_BRANCH_TEXTS: dict[str, tuple[str, ...]] = {
    "queue_wait": (
        "the queue at the {b} branch is {n} minutes, one counter open @NorthbankHelp",
        "@NorthbankHelp {b} branch queue is out the door again, only one cashier",
        "@NorthbankHelp still queueing at {b}, been here {n} minutes",
    ),
    "staff_service": (
        "@NorthbankHelp the staff at your {b} branch were so rude to me today",
        "@NorthbankHelp staff at the {b} branch ignored me for {n} minutes, terrible service",
    ),
    "facilities_atm": (
        "@NorthbankHelp the cash machine at {b} is out of order again",
        "@NorthbankHelp the ATM at the {b} branch swallowed my card",
    ),
    "disruption": (
        "@NorthbankHelp {b} branch closed with no notice, sign on the door says systems down",
        "@NorthbankHelp turned up at {b} and the branch is shut, no explanation",
    ),
}
_TEAM_TEXTS: dict[str, tuple[str, ...]] = {
    "online_outage": (
        "@NorthbankHelp the app keeps crashing, can't see my balance",
        "@NorthbankHelp mobile banking not working, says service unavailable",
        "@NorthbankHelp website login page won't load, tried {n} times",
    ),
    "cards_payments": (
        "@NorthbankHelp my card got declined at the supermarket again",
        "@NorthbankHelp charged twice for the same payment of £{n}",
    ),
    "fees_billing": (
        "@NorthbankHelp why have I been charged a £{n} overdraft fee",
        "@NorthbankHelp charged a monthly fee I never agreed to, again",
    ),
    "security_fraud": (
        "@NorthbankHelp got a text pretending to be you asking for my PIN, is this a scam?",
    ),
    "contact_centre": ("@NorthbankHelp been on hold for {n} minutes on your helpline",),
    "delivery_orders": ("@NorthbankHelp my new card still hasn't arrived after {n} days",),
}
_NOWHERE_TEXTS = (
    "your branch has no cash in the machine again @NorthbankHelp",
    "@NorthbankHelp the queue at the branch is ridiculous again, {n} minutes",
)


def generate_complaints(settings: Settings, n: int, seed: int = 0) -> list[str]:
    """``n`` complaint texts: about 70% about a named branch (every branch, four categories),
    25% for a central team, 5% about a branch nobody could place."""
    rng = random.Random(seed)
    registry = load_registry(settings.path(settings.geo.branches_file))
    names = [b.name for b in registry]
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.70:
            template = rng.choice(_BRANCH_TEXTS[rng.choice(sorted(_BRANCH_TEXTS))])
        elif roll < 0.95:
            template = rng.choice(_TEAM_TEXTS[rng.choice(sorted(_TEAM_TEXTS))])
        else:
            template = rng.choice(_NOWHERE_TEXTS)
        out.append(template.format(b=rng.choice(names), n=rng.randint(2, 90)))
    return out


def last_weekday_morning(now: datetime, tz: str = "Europe/London") -> datetime:
    """10:00 on the last weekday before today, in ``tz``: branches open, managers on duty."""
    day = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime.combine(day, dtime(10, 0), ZoneInfo(tz))


def bench_page_latency(
    settings: Settings,
    client: redis.Redis,
    *,
    complaints: int = 1000,
    rate: float = 200.0,
    timeout: float = 120.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Post ``complaints`` complaints at ``rate`` per second and time their pages.

    Waits at most ``timeout`` seconds after the last complaint for triage and paging to
    finish. ``client`` must reach an empty Redis database (see the module docstring).
    """
    if complaints < 1 or rate <= 0 or timeout <= 0:
        raise ValueError("complaints, rate and timeout must be positive")
    if client.dbsize():
        raise TriageError(
            "the latency bench needs an empty Redis database (its paging job ids would collide "
            "with real ones): point it at a scratch database"
        )
    texts = generate_complaints(settings, complaints, seed)
    run = secrets.token_hex(4)
    with _sinks() as (smtp, hook):
        overrides = _overrides(settings, run, smtp, hook)
        bench = _with_overrides(settings, overrides)
        store = Store(client, bench)
        try:
            with _worker(bench, client, overrides):
                figures = _run(bench, client, texts, rate, timeout, smtp, hook)
                figures["worker"] = "one forking RQ worker: python -m bot.cli worker (subprocess)"
        finally:
            _clean(bench, client)
            store.drop_all()
    return figures


# -- set-up --------------------------------------------------------------------------------
@contextmanager
def _sinks() -> Iterator[tuple[SmtpSink, WebhookSink]]:
    smtp = SmtpSink().start()
    hook = WebhookSink().start()
    try:
        yield smtp, hook
    finally:
        hook.stop()
        smtp.stop()


def _overrides(settings: Settings, run: str, smtp: SmtpSink, hook: WebhookSink) -> dict[str, Any]:
    """Settings for this run, by dotted key: paging into the sinks, a scratch key space."""
    hook_base = f"json://127.0.0.1:{hook.port}"
    secret = settings.secrets.secret_key
    return {
        "redis.key_prefix": f"{settings.redis.key_prefix}-bench-{run}",
        "notify.queue": f"bench-pages-{run}",
        "notify.console_base_url": CONSOLE,
        "notify.smtp.host": "127.0.0.1",
        "notify.smtp.port": smtp.port,
        "notify.smtp.security": "none",
        "notify.smtp.auth": False,
        "notify.routes.sms.url": f"{hook_base}/sms/{{target}}",
        "notify.routes.chat.url": f"{hook_base}/chat/{{channel}}",
        "notify.chat_webhooks": {},  # per-channel webhooks would win over the chat route
        "notify.allow_private_webhook_targets": True,
        "notify.bundle_window_seconds": 0,
        "secrets.secret_key": secret.get_secret_value() if secret else secrets.token_urlsafe(32),
    }


def _with_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """``settings`` with ``overrides`` applied and validated again."""
    data = settings.model_dump()
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return Settings.model_validate(data, context={"environ": dict(os.environ)})


def _environment(
    settings: Settings, client: redis.Redis, overrides: dict[str, Any]
) -> dict[str, str]:
    """The worker's environment: the same configuration and overrides, as TRIAGE_* variables."""
    env = {
        **os.environ,
        "REDIS_URL": _client_url(client),
        "TRIAGE_CONFIG_DIR": str(settings.config_dir),
    }
    for dotted, value in overrides.items():
        if dotted == "secrets.secret_key":
            env["TRIAGE_SECRET_KEY"] = str(value)
        else:
            name = "TRIAGE_" + "__".join(p.upper() for p in dotted.split("."))
            env[name] = json.dumps(value)  # JSON is YAML: read back as the same value
    return env


def _client_url(client: redis.Redis) -> str:
    """A URL reaching the database ``client`` uses, for another process."""
    kw = client.connection_pool.connection_kwargs
    db = int(kw.get("db") or 0)
    if kw.get("path"):
        return f"unix://{kw['path']}?db={db}"
    auth = ""
    if kw.get("password"):
        auth = f"{quote(str(kw.get('username') or ''), safe='')}:"
        auth += f"{quote(str(kw['password']), safe='')}@"
    scheme = "rediss" if "SSL" in client.connection_pool.connection_class.__name__ else "redis"
    return f"{scheme}://{auth}{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{db}"


@contextmanager
def _worker(settings: Settings, client: redis.Redis, overrides: dict[str, Any]) -> Iterator[None]:
    """``triagebot worker <queue>`` in a subprocess, registered and idle."""
    queue = settings.notify.queue
    keys: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "worker.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own CLI
                [sys.executable, "-m", "bot.cli", "worker", queue],
                env=_environment(settings, client, overrides),
                cwd=settings.root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            q = Queue(queue, connection=client)
            while not Worker.all(queue=q):
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise TriageError(f"the bench worker did not start:\n{tail}")
                time.sleep(0.1)
            keys = [w.key for w in Worker.all(queue=q)]
            yield
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # warm shutdown: the current job finishes
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for key in keys:  # RQ leaves a dead worker's record to expire in a minute
            client.unlink(key)
            client.srem(Worker.redis_workers_keys, key)


def _clean(settings: Settings, client: redis.Redis) -> None:
    """Delete the run's RQ jobs, queue and registries (the key prefix is dropped apart)."""
    prefix = settings.redis.key_prefix
    incidents = IncidentStore(client, prefix)
    pages = PageStore(client, prefix)
    for incident_id in incidents.all_ids():
        for job_id in pages.jobs(incident_id):
            try:
                Job.fetch(job_id, connection=client).delete()
            except NoSuchJobError:
                continue
    queue = Queue(settings.notify.queue, connection=client)
    queue.delete(delete_jobs=True)
    leftovers = list(client.scan_iter(match=f"rq:*{settings.notify.queue}*", count=1000))
    if leftovers:
        client.unlink(*leftovers)


# -- the run -------------------------------------------------------------------------------
class _Timed:
    """Wraps the consumer's batch step: time spent triaging, and when the last batch ended."""

    def __init__(self, process: Callable[[Sequence[Any]], None]) -> None:
        self.process = process
        self.busy = 0.0
        self.last_done = 0.0

    def __call__(self, entries: Sequence[Any]) -> None:
        started = time.perf_counter()
        self.process(entries)
        if entries:
            self.busy += time.perf_counter() - started
            self.last_done = time.time()


def _run(
    settings: Settings,
    client: redis.Redis,
    texts: list[str],
    rate: float,
    timeout: float,
    smtp: SmtpSink,
    hook: WebhookSink,
) -> dict[str, Any]:
    from bot.components import build_consumer  # loads spaCy: only when a bench runs

    store = Store(client, settings)
    store.ensure_group()
    consumer = build_consumer(settings, client, name="bench-triage")
    consumer.classify(["warm-up: the model's first call allocates"])
    timed = _Timed(consumer.process)
    consumer.process = timed
    stop = threading.Event()
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            consumer.run(stop)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=consume, name="bench-triage", daemon=True)
    thread.start()

    base = last_weekday_morning(datetime.now(UTC))
    entered: dict[str, float] = {}
    t0 = time.time()
    start = time.perf_counter()
    try:
        for i, text in enumerate(texts):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            now = time.time()
            # Event time runs with the bench from a weekday 10:00: routing follows it.
            at = base + timedelta(seconds=now - t0)
            post = Post(f"bench-{i}", "x", Author(str(i), f"bench{i}"), text, at)
            entered[post.uid] = now
            store.append(Batch([post]))
            if errors:
                break
        fed_s = time.perf_counter() - start
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not errors:
            if consumer.stats.entries >= len(entered) and _all_paged(settings, client):
                break
            time.sleep(0.2)
        time.sleep(0.3)  # a page is received before its incident moves; let answers settle
    finally:
        stop.set()
        thread.join(timeout=30)
    if errors:
        raise TriageError(f"the bench's triage consumer failed: {errors[0]!r}") from errors[0]

    figures = _figures(settings, client, entered, smtp, hook)
    stats = consumer.stats
    active = (timed.last_done - t0) if timed.last_done else 0.0
    figures.update(
        {
            "complaints_sent": len(entered),
            "rate_offered_per_s": round(len(entered) / fed_s, 1) if fed_s else 0.0,
            "triaged": stats.entries,
            "untriaged": len(entered) - stats.entries,
            "classified_not_complaint": stats.not_complaints,
            "unroutable": stats.unroutable,
            "spikes": stats.spikes,
            "triage_per_s": round(stats.entries / active, 1) if active else 0.0,
            "triage_capacity_per_s": round(stats.entries / timed.busy, 1) if timed.busy else 0.0,
            "bundle_window_seconds": settings.notify.bundle_window_seconds,
        }
    )
    return figures


def _all_paged(settings: Settings, client: redis.Redis) -> bool:
    """Every incident has had its first paging step (paged, or found nobody to page)."""
    incidents = IncidentStore(client, settings.redis.key_prefix)
    pages = PageStore(client, settings.redis.key_prefix)
    return all(
        incidents.get(i).state != "open" or pages.step_done(i, 0) for i in incidents.all_ids()
    )


def _figures(
    settings: Settings,
    client: redis.Redis,
    entered: dict[str, float],
    smtp: SmtpSink,
    hook: WebhookSink,
) -> dict[str, Any]:
    """Latency per incident, pages, duplicates and lost complaints from what the sinks got."""
    prefix = settings.redis.key_prefix
    incidents = IncidentStore(client, prefix)
    pages = PageStore(client, prefix)
    secret = settings.secrets.secret_key
    assert secret is not None  # the bench always sets one
    key = secret.get_secret_value()
    max_age = settings.notify.link_max_age_seconds

    # Which incidents each route's idempotency id stands for, from the deliveries.
    by_page_id: dict[str, tuple[set[str], int]] = {}  # (incidents, escalation step)
    opener: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for incident_id in incidents.all_ids():
        complaints = incidents.complaints(incident_id)
        members[incident_id] = [c.post.uid for c in complaints]
        if complaints:
            opener[incident_id] = complaints[0].post.uid
        plan = incidents.plan(incident_id) or {}
        for step in plan.get("steps", []):
            for rec in step.get("recipients", []):
                item = pages.item(incident_id, int(step["step"]), str(rec["person_id"]))
                delivery = pages.delivery(item.delivery) if item.delivery else None
                if delivery is None:
                    continue
                bundled = {parse_member(m)[0] for m in delivery.members}
                for index, (kind, _target) in enumerate(delivery.routes):
                    page_id = idempotency_id(delivery.id, index, kind)
                    by_page_id[page_id] = (bundled, delivery.lead[1])

    received: list[tuple[float, str, str]] = []  # (at, page id, text)
    with hook.lock:
        for r in hook.received:
            if r.answered == 200:
                page_id = str(r.body.get("idempotency_id", ""))
                received.append((r.at, page_id, str(r.body.get("message", ""))))
    with smtp.lock:
        for msg, at in zip(smtp.messages, smtp.received_at, strict=True):
            received.append((at, str(msg.get("X-Triage-Page-Id", "")), SmtpSink.text(msg)))

    first_page: dict[str, float] = {}
    per_person: dict[tuple[str, str, int], int] = {}  # pages per incident, person and step
    escalations = 0
    for at, page_id, text in received:
        bundled, step = by_page_id.get(page_id, (set(), 0))
        named = set(bundled)
        escalations += step > 0
        for token in _LINK.findall(text):
            try:
                incident_id, person_id, _nonce = links.load(token, links.VIEW, max_age, key)
            except LinkError:
                continue
            named.add(incident_id)
            seen = (incident_id, person_id, step)
            per_person[seen] = per_person.get(seen, 0) + 1
        for incident_id in named:
            first_page[incident_id] = min(at, first_page.get(incident_id, math.inf))

    stages = _job_stages(client, prefix, opener, entered)
    latencies = sorted(
        first_page[i] - entered[opener[i]]
        for i in opener
        if i in first_page and opener[i] in entered
    )
    lost = sum(len(uids) for i, uids in members.items() if i not in first_page)
    return {
        "incidents": len(members),
        "incidents_paged": sum(1 for i in members if i in first_page),
        "complaints_in_incidents": sum(len(u) for u in members.values()),
        "complaints_lost": lost,
        "pages_received": len(received),
        "escalation_pages": escalations,  # a spike on an incident already paged raises it
        "duplicate_pages": sum(n - 1 for n in per_person.values() if n > 1),
        "latency_samples": len(latencies),
        "latency_p50_ms": _ms(_percentile(latencies, 0.50)),
        "latency_p99_ms": _ms(_percentile(latencies, 0.99)),
        "latency_max_ms": _ms(latencies[-1] if latencies else None),
        **stages,
    }


def _job_stages(
    client: redis.Redis, prefix: str, opener: dict[str, str], entered: dict[str, float]
) -> dict[str, float | None]:
    """Where the time goes, from each incident's first paging job (p50 and p99, ms): triage
    (complaint appended → job queued), queue (queued → a work horse started it), job
    (started → ended, including the send); and the worker's pace in jobs per second."""
    parts: dict[str, list[float]] = {"triage": [], "queue": [], "job": []}
    spans: list[tuple[float, float]] = []
    for incident_id, uid in opener.items():
        if uid not in entered:
            continue
        try:
            job = Job.fetch(page_job_id(prefix, incident_id, 0), connection=client)
        except NoSuchJobError:
            continue
        if job.enqueued_at is None or job.started_at is None or job.ended_at is None:
            continue
        queued = job.enqueued_at.replace(tzinfo=UTC).timestamp()
        started = job.started_at.replace(tzinfo=UTC).timestamp()
        ended = job.ended_at.replace(tzinfo=UTC).timestamp()
        parts["triage"].append(queued - entered[uid])
        parts["queue"].append(started - queued)
        parts["job"].append(ended - started)
        spans.append((started, ended))
    out: dict[str, float | None] = {}
    if len(spans) > 1:  # the worker's pace while it had paging jobs to run
        busy = max(e for _, e in spans) - min(s for s, _ in spans)
        out["worker_jobs_per_s"] = round(len(spans) / busy, 1) if busy > 0 else None
    for name, values in parts.items():
        values.sort()
        out[f"{name}_p50_ms"] = _ms(_percentile(values, 0.50))
        out[f"{name}_p99_ms"] = _ms(_percentile(values, 0.99))
    return out


def _percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    return values[max(0, math.ceil(p * len(values)) - 1)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
