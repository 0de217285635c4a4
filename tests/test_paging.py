"""Paging end to end: real Redis, real RQ workers, apprise to real loopback SMTP/webhook sinks.

Invariant 3 (paged at least once per incident and step, never twice) is exercised by running
steps twice, killing a forking worker with SIGKILL in the middle of a send, and restarting
Redis with persistence between a page and its scheduled escalation.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

import workers
from bot.config import Settings
from bot.errors import (
    ExpiredLinkError,
    InvalidLinkError,
    LinkReplayedError,
    RenderError,
    TriageError,
    UnsafeTargetError,
    WrongLinkActionError,
)
from bot.models import Author, Complaint, Post
from bot.notify import links
from bot.notify.send import check_public_target
from bot.notify.settings import NotifySettings
from bot.render import Renderer, fit_words
from bot.sinks import SmtpSink, WebhookSink, wait_until
from bot.store.incidents import IncidentStore
from bot.store.pages import PageStore
from tests.redis_server import RedisProcess
from workers.main import TriageSimpleWorker
from workers.pages import cancel_pages, enqueue_page, escalate_now, page_step

# apprise loads its email plugin lazily, which imports the deprecated stdlib imghdr (a shim
# for its PGP support); the one-line filter belongs in pyproject.toml's filterwarnings.

ROOT = Path(__file__).resolve().parent.parent
SECRET = "paging-test-secret"
PRIYA = "p-ldn-camden-mgr"
TOM = "p-ldn-camden-dep"


# -- helpers -------------------------------------------------------------------------------
def person(pid: str, name: str, *routes: tuple[str, str]) -> dict[str, Any]:
    return {
        "person_id": pid,
        "name": name,
        "routes": [{"kind": k, "target": t} for k, t in routes],
    }


def plan(*steps: tuple[float, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "policy": "default",
        "steps": [
            {"step": i, "after_minutes": after, "recipients": recipients}
            for i, (after, recipients) in enumerate(steps)
        ],
    }


PRIYA_EMAIL = person(PRIYA, "Priya Shah", ("email", "priya.shah@northbank.example"))
TOM_EMAIL = person(TOM, "Tom Reid", ("email", "tom.reid@northbank.example"))

_posts = iter(range(10_000, 10**9))


def make_incident(
    incidents: IncidentStore,
    the_plan: dict[str, Any] | None,
    *,
    branch: str = "ldn-camden",
    category: str = "queue_wait",
    severity: str = "medium",
    texts: tuple[str, ...] = ("queue out the door <script>alert(1)</script> @everyone",),
) -> str:
    incident_id = ""
    for text in texts:
        n = next(_posts)
        post = Post(
            str(n),
            "x",
            Author(str(n), f"cust{n}"),
            text,
            datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        )
        c = Complaint(post, category, severity, 0.9, branch, 0.9, ("text: 'Camden'",))
        incident_id, _, _ = incidents.add_complaint(
            c, group=f"branch:{branch}:{category}", team_id=None, window_s=3600
        )
    if the_plan is not None:
        incidents.set_plan(incident_id, the_plan)
    return incident_id


def work(conn: redis.Redis, *, scheduler: bool = True) -> None:
    """One real in-process burst worker on the pages queue (with its scheduler's due jobs)."""
    SimpleWorker([Queue("pages", connection=conn)], connection=conn).work(
        burst=True, with_scheduler=scheduler, logging_level="WARNING"
    )


def kinds(incidents: IncidentStore, incident_id: str) -> list[str]:
    return [e.kind for e in incidents.timeline(incident_id)]


def attempts(incidents: IncidentStore, incident_id: str) -> list[dict[str, Any]]:
    return [e.detail for e in incidents.timeline(incident_id) if e.kind == "page_attempt"]


def link_token(text: str) -> str:
    m = re.search(r"http://console\.test/i/([A-Za-z0-9_.\-]+)", text)
    assert m, text
    return m.group(1)


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def hook() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    yield sink
    sink.stop()


def notify_data(smtp: SmtpSink, hook: WebhookSink, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "console_base_url": "http://console.test",
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "from_address": "pager@northbank.example",
            "security": "none",
        },
        "routes": {
            "sms": {
                "url": hook.url("/sms") + "?:to={target}",
                "timeout_seconds": 2,
                "backoff_seconds": 0.05,
            },
            "email": {"format": "html", "timeout_seconds": 2, "backoff_seconds": 0.05},
            "chat": {"format": "markdown", "timeout_seconds": 2, "backoff_seconds": 0.05},
        },
        "chat_webhooks": {"slack:#ldn-camden": hook.url("/chat")},
        "allow_private_webhook_targets": True,
        "bundle_window_seconds": 2,
        "page_retry_seconds": [1, 1, 1],
        "lease_margin_seconds": 1,
    }
    data.update(over)
    return data


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(TRIAGE_SECRET_KEY=SECRET)


@pytest.fixture
def notify(smtp: SmtpSink, hook: WebhookSink, settings: Settings) -> NotifySettings:
    n = NotifySettings.from_mapping(notify_data(smtp, hook))
    workers.configure(settings, n)
    return n


@pytest.fixture
def incidents(redis_client: redis.Redis, settings: Settings) -> IncidentStore:
    return IncidentStore(redis_client, settings.redis.key_prefix)


@pytest.fixture
def pages(redis_client: redis.Redis, settings: Settings) -> PageStore:
    return PageStore(redis_client, settings.redis.key_prefix)


@pytest.fixture
def queue(redis_client: redis.Redis) -> Queue:
    return Queue("pages", connection=redis_client)


# -- tests ---------------------------------------------------------------------------------
def test_a_page_reaches_smtp_with_a_signed_link_that_loads_back(
    redis_client: redis.Redis,
    settings: Settings,
    notify: NotifySettings,
    smtp: SmtpSink,
    incidents: IncidentStore,
    queue: Queue,
) -> None:
    inc = make_incident(
        incidents,
        plan((0, [PRIYA_EMAIL]), (15, [TOM_EMAIL])),
        texts=("queue out the door <script>alert(1)</script>", "40 minutes & counting"),
    )
    enqueue_page(queue, settings, inc, notify=notify)
    work(redis_client)

    assert smtp.wait_for(1)
    msg = smtp.messages[0]
    assert msg["To"] == "priya.shah@northbank.example"
    assert "2 complaints about queue wait at ldn-camden" in msg["Subject"]
    html = SmtpSink.html(msg)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "40 minutes &amp; counting" in html
    token = link_token(html)
    incident_id, person_id, nonce = links.load(
        token, links.VIEW, notify.link_max_age_seconds, SECRET
    )
    assert (incident_id, person_id) == (inc, PRIYA) and nonce
    assert msg["X-Triage-Page-Id"].startswith("tb-")  # the stable idempotency id

    state = incidents.get(inc)
    assert state.state == "paged" and state.escalation_step == 0
    [attempt] = attempts(incidents, inc)
    assert attempt["result"] == "sent" and attempt["route"] == "email"
    assert attempt["target"] == "p***@northbank.example" and attempt["person_id"] == PRIYA
    # step 1 is scheduled for later, under a deterministic job id
    assert f"page-triage-{inc}-1" in ScheduledJobRegistry(queue=queue).get_job_ids()


def test_sms_and_chat_go_through_json_webhooks(
    redis_client: redis.Redis,
    settings: Settings,
    notify: NotifySettings,
    hook: WebhookSink,
    incidents: IncidentStore,
    pages: PageStore,
    queue: Queue,
) -> None:
    inc = make_incident(
        incidents,
        plan(
            (
                0,
                [
                    person(PRIYA, "Priya Shah", ("sms", "+447700900123")),
                    person(TOM, "Tom Reid", ("chat", "slack:#ldn-camden")),
                ],
            )
        ),
        category="online_outage",
        severity="high",
        texts=tuple(f"app down again <b>#{i}</b> @everyone" for i in range(8)),
    )
    incidents.mark_spike(inc, "8 complaints about the app in 5 minutes, normal is 0.5")
    enqueue_page(queue, settings, inc, notify=notify)
    work(redis_client)

    [sms] = hook.on("/sms")
    body = sms.body
    assert body["to"] == "+447700900123"
    assert len(body["message"]) <= 320
    assert "ldn-camden" in body["message"] and "8 complaints" in body["message"]
    assert "normal is 0.5" in body["message"] and "high" in body["message"]
    assert links.load(link_token(body["message"]), "view", 3600, SECRET)[:2] == (inc, PRIYA)
    assert body["idempotency_id"] == sms.headers["Idempotency-Key"]

    [chat] = hook.on("/chat")
    text = chat.body["message"]
    assert "&lt;b&gt;" in text and "<b>" not in text  # quoted posts cannot format or link
    assert "@\u200beveryone" in text  # nor ping
    assert "…and 3 more" in text and link_token(text)
    assert incidents.get(inc).state == "paged"
    assert {a["person_id"] for a in attempts(incidents, inc)} == {PRIYA, TOM}
    assert pages.step_done(inc, 0)


def test_two_incidents_for_one_person_within_the_window_are_one_message(
    redis_client: redis.Redis,
    settings: Settings,
    notify: NotifySettings,
    smtp: SmtpSink,
    incidents: IncidentStore,
    queue: Queue,
) -> None:
    the_plan = plan((0, [PRIYA_EMAIL]))
    a = make_incident(incidents, the_plan, category="queue_wait")
    b = make_incident(incidents, the_plan, category="facilities_atm", severity="low")
    enqueue_page(queue, settings, a, notify=notify)
    enqueue_page(queue, settings, b, notify=notify)
    work(redis_client)

    assert smtp.wait_for(1)
    time.sleep(0.2)
    assert len(smtp.messages) == 1  # both in one message
    html = SmtpSink.html(smtp.messages[0])
    tokens = re.findall(r"http://console\.test/i/([A-Za-z0-9_.\-]+)", html)
    loaded = {links.load(t, "view", 3600, SECRET)[0] for t in tokens}
    assert loaded == {a, b}
    assert "2 incidents need you" in smtp.messages[0]["Subject"]
    for inc in (a, b):
        assert incidents.get(inc).state == "paged"
        [att] = attempts(incidents, inc)
        assert att["result"] == "sent" and sorted(att["bundle"]) == sorted([a, b])

    # Two more within the window (2 s here) wait for it to end, then go out together.
    c = make_incident(incidents, the_plan, category="staff_service")
    d = make_incident(incidents, the_plan, category="disruption")
    enqueue_page(queue, settings, c, notify=notify)
    enqueue_page(queue, settings, d, notify=notify)
    work(redis_client)
    assert len(smtp.messages) == 1
    assert "page_held" in kinds(incidents, c)
    assert wait_until(lambda: (work(redis_client), len(smtp.messages) >= 2)[1], timeout=8)
    time.sleep(0.2)
    work(redis_client)
    assert len(smtp.messages) == 2
    html = SmtpSink.html(smtp.messages[1])
    tokens = re.findall(r"http://console\.test/i/([A-Za-z0-9_.\-]+)", html)
    assert {links.load(t, "view", 3600, SECRET)[0] for t in tokens} == {c, d}
    assert incidents.get(c).state == incidents.get(d).state == "paged"


def test_escalation_pages_the_backup_unless_acknowledged(
    redis_client: redis.Redis,
    settings: Settings,
    notify: NotifySettings,
    smtp: SmtpSink,
    incidents: IncidentStore,
    queue: Queue,
) -> None:
    the_plan = plan((0, [PRIYA_EMAIL]), (0.02, [TOM_EMAIL]))  # step 1 after 1.2 s
    inc = make_incident(incidents, the_plan)
    acked = make_incident(incidents, the_plan, category="staff_service")
    enqueue_page(queue, settings, inc, notify=notify)
    enqueue_page(queue, settings, acked, notify=notify)
    work(redis_client)
    assert smtp.wait_for(1)  # Priya: both incidents, one message
    assert len(smtp.messages) == 1

    incidents.transition(acked, "acknowledged", PRIYA)
    assert cancel_pages(redis_client, settings, acked) == 1  # its scheduled step 1
    assert Job.fetch(f"page-triage-{acked}-1", connection=redis_client).get_status() == (
        JobStatus.CANCELED
    )

    # RQ's burst scheduler only moves jobs already due: wait for step 1 to fall due.
    assert wait_until(lambda: (work(redis_client), len(smtp.messages) >= 2)[1], timeout=8)
    work(redis_client)
    time.sleep(0.2)
    assert [m["To"] for m in smtp.messages] == [
        "priya.shah@northbank.example",
        "tom.reid@northbank.example",
    ]
    assert "escalation step 1" in smtp.messages[1]["Subject"]
    state = incidents.get(inc)
    assert state.state == "escalated" and state.escalation_step == 1
    assert incidents.get(acked).state == "acknowledged"
    assert incidents.get(acked).escalation_step == 0

    # A step-1 job that was already queued when the ack came returns early: nothing sent.
    job = queue.enqueue(page_step, acked, 1)
    work(redis_client)
    assert job.get_status() == JobStatus.FINISHED
    assert str(job.return_value()).startswith("skipped")
    assert len(smtp.messages) == 2


def test_a_spike_raises_a_paged_incident_to_its_next_step_now(
    redis_client: redis.Redis,
    settings: Settings,
    notify: NotifySettings,
    smtp: SmtpSink,
    incidents: IncidentStore,
    queue: Queue,
) -> None:
    the_plan = plan((0, [PRIYA_EMAIL]), (15, [TOM_EMAIL]))  # step 1 due in 15 minutes
    inc = make_incident(incidents, the_plan)
    enqueue_page(queue, settings, inc, notify=notify)
    work(redis_client)
    assert smtp.wait_for(1)
    assert Job.fetch(f"page-triage-{inc}-1", connection=redis_client).get_status() == (
        JobStatus.SCHEDULED
    )
    incidents.mark_spike(inc, "8 complaints about queue wait in 5 minutes, normal is 0.5")
    assert escalate_now(queue, settings.model_copy(update={"notify": notify}), inc) == (
        f"page-triage-{inc}-1"
    )
    assert escalate_now(queue, settings.model_copy(update={"notify": notify}), inc) == (
        f"page-triage-{inc}-1"
    )  # twice: still one job for the step
    work(redis_client)
    assert smtp.wait_for(2)
    time.sleep(0.2)
    assert [m["To"] for m in smtp.messages] == [
        "priya.shah@northbank.example",
        "tom.reid@northbank.example",
    ]
    assert "8 complaints about queue wait" in SmtpSink.text(smtp.messages[1])
    assert incidents.get(inc).escalation_step == 1


def test_a_failing_route_is_retried_then_the_next_route_is_used(
    redis_client: redis.Redis,
    settings: Settings,
    notify: NotifySettings,
    smtp: SmtpSink,
    hook: WebhookSink,
    incidents: IncidentStore,
) -> None:
    routes = person(
        PRIYA,
        "Priya Shah",
        ("sms", "+447700900123"),
        ("email", "priya.shah@northbank.example"),
        ("chat", "slack:#ldn-camden"),
    )
    inc = make_incident(incidents, plan((0, [routes])))
    hook.plan.extend(["fail", "fail"])  # both SMS attempts get a 500
    smtp.stop()  # SMTP down: connection refused
    enqueue_page(Queue("pages", connection=redis_client), settings, inc, notify=notify)
    work(redis_client)

    assert len(hook.on("/sms")) == 2 and len(hook.on("/chat")) == 1
    got = [
        (a["route"], a["attempt"], a["result"], a.get("error", ""))
        for a in attempts(incidents, inc)
    ]
    assert got == [
        ("sms", 1, "failed", "sms: HTTP 500"),
        ("sms", 2, "failed", "sms: HTTP 500"),
        ("email", 1, "failed", "email: connection failed"),
        ("email", 2, "failed", "email: connection failed"),
        ("chat", 1, "sent", ""),
    ]
    for a in attempts(incidents, inc):
        assert a["target"] in ("+44*******123", "p***@northbank.example", "slack:#ldn-camden")
    assert incidents.get(inc).state == "paged"


def test_every_route_failing_is_retried_by_rq_then_delivered(
    redis_client: redis.Redis,
    settings: Settings,
    notify: NotifySettings,
    hook: WebhookSink,
    incidents: IncidentStore,
) -> None:
    inc = make_incident(incidents, plan((0, [person(PRIYA, "Priya", ("sms", "+447700900123"))])))
    hook.plan.extend(["fail", "fail"])
    enqueue_page(Queue("pages", connection=redis_client), settings, inc, notify=notify)
    work(redis_client)
    assert incidents.get(inc).state == "open" and len(hook.accepted()) == 0
    # PageFailedError: RQ retries the job after 1 s; the delivery resumes with the same ids.
    assert wait_until(lambda: (work(redis_client), len(hook.accepted()) == 1)[1], timeout=8)
    ids = {r.body["idempotency_id"] for r in hook.on("/sms")}
    assert len(hook.on("/sms")) == 3 and len(ids) == 1
    assert incidents.get(inc).state == "paged"


def test_the_same_step_run_twice_pages_once(
    redis_client: redis.Redis,
    settings: Settings,
    notify: NotifySettings,
    smtp: SmtpSink,
    incidents: IncidentStore,
    queue: Queue,
) -> None:
    inc = make_incident(incidents, plan((0, [PRIYA_EMAIL])))
    enqueue_page(queue, settings, inc, notify=notify)
    enqueue_page(queue, settings, inc, notify=notify)  # the same job id: queued once
    queue.enqueue(page_step, inc, 0)  # and two more jobs for the same step
    queue.enqueue(page_step, inc, 0)
    assert queue.count == 3
    work(redis_client)
    work(redis_client)
    time.sleep(0.3)
    assert len(smtp.messages) == 1
    assert len(attempts(incidents, inc)) == 1
    # The step guard: a late re-run returns at once.
    job = queue.enqueue(page_step, inc, 0)
    work(redis_client)
    assert job.return_value() == "already done" and len(smtp.messages) == 1


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(x) for x in text]
    return out


def spawn_worker(
    redis_url: str, data: dict[str, Any], tuning: dict[str, Any], *, burst: bool
) -> subprocess.Popen[bytes]:
    """A forking TriageWorker in its own process (and session), like production."""
    cfg = {
        "config_dir": str(ROOT / "config"),
        "env": {
            "REDIS_URL": redis_url,
            "TRIAGE_SECRET_KEY": SECRET,
            "TRIAGE_X_BEARER_TOKEN": "test-token",
        },
        "notify": data,
        "tuning": tuning,
        "burst": burst,
    }
    code = (
        "import json, sys\n"
        "from bot.config import load_settings\n"
        "from bot.notify.settings import NotifySettings\n"
        "from workers.main import WorkerSettings, run_worker\n"
        "cfg = json.loads(sys.argv[1])\n"
        "settings = load_settings(cfg['config_dir'], environ=cfg['env'])\n"
        "notify = NotifySettings.from_mapping(cfg['notify'])\n"
        "run_worker(settings, ('pages',), burst=cfg['burst'], notify=notify,\n"
        "           tuning=WorkerSettings(**cfg['tuning']))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(cfg)],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("dedupes", [False, True], ids=["provider-does-not-dedupe", "dedupes"])
def test_a_worker_killed_mid_send_pages_exactly_once_after_the_rerun(
    dedupes: bool,
    redis_url: str,
    redis_client: redis.Redis,
    settings: Settings,
    smtp: SmtpSink,
    hook: WebhookSink,
    incidents: IncidentStore,
    pages: PageStore,
    queue: Queue,
) -> None:
    data = notify_data(smtp, hook)
    data["routes"]["chat"]["provider_dedupes"] = dedupes
    data["routes"]["chat"]["timeout_seconds"] = 2
    notify = NotifySettings.from_mapping(data)
    workers.configure(settings, notify)
    inc = make_incident(
        incidents, plan((0, [person(PRIYA, "Priya", ("chat", "slack:#ldn-camden"))]))
    )
    enqueue_page(queue, settings, inc, notify=notify)
    hook.plan.append("hang")  # the provider gets the body and never answers

    proc = spawn_worker(
        redis_url,
        data,
        {"job_monitoring_interval_seconds": 1, "heartbeat_grace_seconds": 2},
        burst=True,
    )
    try:
        assert hook.hung.wait(20), "the worker never reached the webhook"
        horses = _children(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and its work horse, mid-send
        for pid in horses:
            os.kill(pid, signal.SIGKILL)
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert f"page-triage-{inc}-0" in StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)
    assert len(hook.on("/chat")) == 1 and not pages.step_done(inc, 0)

    # A fresh worker finds the job abandoned (heartbeat expired), RQ retries it, the rerun
    # finds the delivery "sending" by a dead owner and settles it.
    assert wait_until(
        lambda: (work(redis_client), pages.step_done(inc, 0))[1], timeout=30, step=0.5
    )
    received = hook.on("/chat")
    ids = {r.body["idempotency_id"] for r in received}
    assert len(ids) == 1  # one page, as providers that dedupe by this id see it
    results = [a["result"] for a in attempts(incidents, inc)]
    if dedupes:
        assert len(received) == 2 and results == ["sent"]  # sent again, same id
    else:
        assert len(received) == 1 and results == ["uncertain"]  # not sent again
    assert incidents.get(inc).state == "paged"
    # the killed run's job itself was retried by RQ (abandoned) and finished
    assert Job.fetch(f"page-triage-{inc}-0", connection=redis_client).get_status() == (
        JobStatus.FINISHED
    )


def test_the_incident_and_its_scheduled_escalation_survive_a_redis_restart(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    smtp: SmtpSink,
    hook: WebhookSink,
) -> None:
    server = RedisProcess(tmp_path / "aof", "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    try:
        settings = make_settings(REDIS_URL=server.url, TRIAGE_SECRET_KEY=SECRET)
        notify = NotifySettings.from_mapping(notify_data(smtp, hook))
        workers.configure(settings, notify)
        conn = redis.Redis.from_url(server.url)
        incidents = IncidentStore(conn, settings.redis.key_prefix)
        inc = make_incident(incidents, plan((0, [PRIYA_EMAIL]), (0.03, [TOM_EMAIL])))
        enqueue_page(Queue("pages", connection=conn), settings, inc, notify=notify)
        work(conn)
        assert smtp.wait_for(1)
        conn.close()

        server.stop(kill=True)  # a crash, not a clean shutdown
        server.start()

        conn = redis.Redis.from_url(server.url)
        incidents = IncidentStore(conn, settings.redis.key_prefix)
        assert incidents.get(inc).state == "paged"
        queue = Queue("pages", connection=conn)
        assert f"page-triage-{inc}-1" in ScheduledJobRegistry(queue=queue).get_job_ids()
        assert wait_until(lambda: (work(conn), len(smtp.messages) >= 2)[1], timeout=10)
        assert smtp.messages[1]["To"] == "tom.reid@northbank.example"
        assert incidents.get(inc).state == "escalated"
        conn.close()
    finally:
        server.stop()


@pytest.mark.soak
def test_measure_throughput_and_latency(
    redis_url: str,
    redis_client: redis.Redis,
    settings: Settings,
    notify: NotifySettings,
    smtp: SmtpSink,
    hook: WebhookSink,
    incidents: IncidentStore,
    queue: Queue,
    record_property: Callable[[str, object], None],
) -> None:
    """Figures for the report, not assertions: pages through one worker to the webhook sink."""
    n = 200
    counter = iter(range(10**6))

    def batch(size: int) -> dict[str, str]:
        """``size`` incidents, each paging its own person by SMS: target -> incident id."""
        out = {}
        for _ in range(size):
            i = next(counter)
            target = f"+4477009{i:05d}"
            who = person(f"p-{i}", f"Person {i}", ("sms", target))
            out[target] = make_incident(incidents, plan((0, [who])), branch=f"b-{i}")
        return out

    def latencies(enqueued: dict[str, float]) -> list[float]:
        got = {r.body["to"]: r.at for r in hook.on("/sms")}
        return sorted(got[t] - at for t, at in enqueued.items())

    def pct(values: list[float], p: float) -> float:
        return round(values[min(len(values) - 1, int(len(values) * p))] * 1000, 1)

    # 1. One in-process worker drains n queued pages.
    enqueued = {}
    for target, inc in batch(n).items():
        enqueue_page(queue, settings, inc, notify=notify)
        enqueued[target] = time.time()
    t0 = time.perf_counter()
    TriageSimpleWorker([queue], connection=redis_client).work(burst=True, logging_level="WARNING")
    drain = time.perf_counter() - t0
    assert hook.wait_for(n, "/sms")
    burst_lat = latencies(enqueued)

    # 2. A forking worker process (as deployed): n pages at a steady 12.5/s, then n/4 at once.
    proc = spawn_worker(redis_url, notify_data(smtp, hook), {}, burst=False)
    try:
        paced = {}
        for target, inc in batch(n).items():
            paced[target] = time.time()
            enqueue_page(queue, settings, inc, notify=notify)
            time.sleep(0.08)
        assert hook.wait_for(2 * n, "/sms", timeout=30)
        ready = batch(n // 4)
        t1 = time.perf_counter()
        for inc in ready.values():
            enqueue_page(queue, settings, inc, notify=notify)
        assert hook.wait_for(2 * n + n // 4, "/sms", timeout=60)
        fork_drain = time.perf_counter() - t1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    paced_lat = latencies(paced)
    figures = {
        "simple_worker_pages_per_s": round(n / drain, 1),
        "simple_worker_all_queued_p50_ms": pct(burst_lat, 0.5),
        "simple_worker_all_queued_p99_ms": pct(burst_lat, 0.99),
        "forking_worker_pages_per_s": round(n // 4 / fork_drain, 1),
        "forking_worker_12_per_s_p50_ms": pct(paced_lat, 0.5),
        "forking_worker_12_per_s_p99_ms": pct(paced_lat, 0.99),
    }
    for k, v in figures.items():
        record_property(k, v)
    print("\npaging figures:", figures)


# -- the pieces, without workers -----------------------------------------------------------
def test_links_are_signed_per_action_expire_and_are_single_use(
    redis_client: redis.Redis,
) -> None:
    token = links.sign("000042", PRIYA, links.VIEW, SECRET)
    assert links.load(token, links.VIEW, 60, SECRET)[:2] == ("000042", PRIYA)
    with pytest.raises(WrongLinkActionError):
        links.load(token, links.ACKNOWLEDGE, 60, SECRET)
    with pytest.raises(InvalidLinkError):
        links.load(token, links.VIEW, 60, "another-secret")
    with pytest.raises(InvalidLinkError):
        links.load(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), links.VIEW, 60, SECRET)
    old = URLSafeTimedSerializer(SECRET, salt="triagebot.link.view", signer=_SignedTwoMinutesAgo)
    stale = old.dumps(["view", "000042", PRIYA, "n1"])
    with pytest.raises(ExpiredLinkError):
        links.load(str(stale), links.VIEW, 60, SECRET)
    assert isinstance(ExpiredLinkError("x"), TriageError)
    _, _, nonce = links.load(
        links.sign("000042", PRIYA, links.ACKNOWLEDGE, SECRET), "ack", 60, SECRET
    )
    links.consume(redis_client, nonce, ttl_seconds=60)
    with pytest.raises(LinkReplayedError):
        links.consume(redis_client, nonce, ttl_seconds=60)
    assert links.incident_url("https://c.example/", "tok") == "https://c.example/i/tok"


class _SignedTwoMinutesAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 120


def test_the_renderer_escapes_html_refuses_undefined_and_fits_words(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text("<p>{{ text }}</p>")
    (tmp_path / "t.txt").write_text("{{ text }}")
    (tmp_path / "bad.txt").write_text("{{ missing }}")
    (tmp_path / "huge.txt").write_text("{% for i in range(100) %}xxxxxxxxxx{% endfor %}")
    r = Renderer(tmp_path, max_chars=500)
    assert r.render("t.html", text="<b>{{ 7*7 }}</b>") == "<p>&lt;b&gt;{{ 7*7 }}&lt;/b&gt;</p>"
    assert r.render("t.txt", text="{{ 7*7 }}") == "{{ 7*7 }}"  # data is never a template
    with pytest.raises(RenderError):
        r.render("bad.txt")
    with pytest.raises(RenderError):
        r.render("huge.txt")
    text = "Thanks for flagging this: we've opened two more counters at Camden https://x.co/abc"
    fitted = r.render_post_text("t.txt", 40, text=text)
    assert fitted == "Thanks for flagging this: we've opened…" and len(fitted) <= 40
    assert r.render_post_text("t.txt", 200, text=text) == text


@given(st.text(min_size=1, max_size=300), st.integers(min_value=2, max_value=200))
def test_fitting_never_cuts_a_word(text: str, limit: int) -> None:
    try:
        out = fit_words(text, limit)
    except RenderError:
        assert len(text) > limit
        return
    assert len(out) <= limit
    if out != text:  # a prefix of the text, ending where a word ends (or its trailing comma)
        assert out.endswith("…")
        prefix = out[:-1]
        rest = text[len(prefix) :]
        assert text.startswith(prefix) and prefix.strip()
        assert rest[0].isspace() or rest[0] in ",;:-–—"


def test_settings_refuse_literal_credentials_and_name_missing_variables() -> None:
    with pytest.raises(ValueError, match="credentials in a URL belong in the environment"):
        NotifySettings.from_mapping({"routes": {"sms": {"url": "twilio://AC1:secret@+44/"}}})
    n = NotifySettings.from_mapping({}, environ={"TRIAGE_TWILIO_ACCOUNT_SID": "AC" + "a" * 32})
    assert n.problems() == [
        "notify.routes.sms: environment variable(s) not set: TRIAGE_TWILIO_AUTH_TOKEN, "
        "TRIAGE_TWILIO_FROM"
    ]
    env = {
        "TRIAGE_TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
        "TRIAGE_TWILIO_AUTH_TOKEN": "b" * 32,
        "TRIAGE_TWILIO_FROM": "+447700900000",
        "TRIAGE_CHAT_LDN": "slack://T1/B1/C1",
    }
    n = NotifySettings.from_mapping({"chat_webhooks": {"slack:#ldn": "${TRIAGE_CHAT_LDN}"}}, env)
    assert n.problems() == []
    assert n.apprise_url("sms", "+447700900123") == (
        f"twilio://AC{'a' * 32}:{'b' * 32}@+447700900000/%2B447700900123"
    )
    assert n.apprise_url("chat", "slack:#ldn") == "slack://T1/B1/C1"
    bot = NotifySettings.from_mapping(
        {"routes": {"chat": {"url": "slack://${TRIAGE_SLACK_BOT_TOKEN}/{channel}"}}},
        {"TRIAGE_SLACK_BOT_TOKEN": "xoxb-1-2-abc"},
    )
    assert bot.apprise_url("chat", "slack:#ldn-camden") == "slack://xoxb-1-2-abc/%23ldn-camden"
    assert "b" * 32 not in repr(n)  # secrets never show
    with pytest.raises(LookupError, match="no webhook"):
        n.apprise_url("chat", "slack:#elsewhere")


def test_a_webhook_into_a_private_network_is_refused_and_the_next_route_used(
    redis_client: redis.Redis,
    settings: Settings,
    smtp: SmtpSink,
    hook: WebhookSink,
    incidents: IncidentStore,
) -> None:
    notify = NotifySettings.from_mapping(
        notify_data(smtp, hook, allow_private_webhook_targets=False)
    )
    workers.configure(settings, notify)
    with pytest.raises(UnsafeTargetError):
        check_public_target("json://169.254.169.254/latest")
    who = person(PRIYA, "Priya", ("chat", "slack:#ldn-camden"), ("email", "p@northbank.example"))
    inc = make_incident(incidents, plan((0, [who])))
    enqueue_page(Queue("pages", connection=redis_client), settings, inc, notify=notify)
    work(redis_client)
    assert hook.received == [] and smtp.wait_for(1)
    got = [(a["route"], a["result"]) for a in attempts(incidents, inc)]
    assert got == [("chat", "unavailable"), ("email", "sent")]
    assert "non-public address" in attempts(incidents, inc)[0]["error"]


@pytest.mark.parametrize("dedupes", [False, True], ids=["provider-does-not-dedupe", "dedupes"])
def test_a_send_that_times_out_is_uncertain_and_resent_only_to_a_deduping_provider(
    dedupes: bool,
    redis_client: redis.Redis,
    settings: Settings,
    smtp: SmtpSink,
    hook: WebhookSink,
    incidents: IncidentStore,
) -> None:
    data = notify_data(smtp, hook)
    data["routes"]["sms"].update(timeout_seconds=0.5, provider_dedupes=dedupes)
    notify = NotifySettings.from_mapping(data)
    workers.configure(settings, notify)
    who = person(PRIYA, "Priya", ("sms", "+447700900123"), ("email", "p@northbank.example"))
    inc = make_incident(incidents, plan((0, [who])))
    hook.hang_seconds = 1.5
    hook.plan.append("hang")  # the gateway takes the request and answers too late
    enqueue_page(Queue("pages", connection=redis_client), settings, inc, notify=notify)
    work(redis_client)
    got = [(a["route"], a["result"]) for a in attempts(incidents, inc)]
    received = hook.on("/sms")
    if dedupes:  # the same id again: the gateway drops the repeat
        assert got == [("sms", "uncertain"), ("sms", "sent")] and len(received) == 2
        assert len({r.body["idempotency_id"] for r in received}) == 1
    else:  # never a second SMS, nor an email on top: the page is recorded as uncertain
        assert got == [("sms", "uncertain")] and len(received) == 1
        assert smtp.messages == []
    assert incidents.get(inc).state == "paged"
