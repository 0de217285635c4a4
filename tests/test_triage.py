"""Triage end to end: stream → classify → locate → route → incident → a page at a real sink.

Everything is the production wiring: the trained spaCy model, the branch registry and routing
of ``config/`` (``bot.components.build_consumer``), a real Redis, real RQ workers (in-process,
burst mode) and apprise sending to loopback SMTP/webhook sinks. Invariants 1 (nothing lost when
a consumer dies before acknowledging) and 2 (the same post twice has its effects once) are
checked at the level a manager sees: incidents and pages.

Posts are dated a Tuesday at 10:00 in London, in the past: routing follows the post's own time,
and then every sample branch is open and its manager on duty.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from rq import Queue

import workers
from bot.channels import Batch
from bot.channels.replay import ReplaySource
from bot.channels.sandbox.payload import x_time
from bot.components import build_consumer
from bot.config import Settings, load_settings
from bot.ingest import Listener, Supervised
from bot.models import Author, Post
from bot.nlp.data import CORPUS_DIR, load_corpus
from bot.nlp.pipeline import default_model_dir
from bot.nlp.train import train
from bot.notify import links
from bot.sinks import SmtpSink, WebhookSink
from bot.store import Store
from bot.store.incidents import IncidentStore
from bot.triage import TriageConsumer
from tests.factories import line, x_payload
from workers.main import TriageSimpleWorker, build_worker

ROOT = Path(__file__).resolve().parent.parent
SECRET = "triage-test-secret"
CONSOLE = "http://console.test"
TUESDAY_10 = datetime(2025, 6, 10, 10, 0, tzinfo=ZoneInfo("Europe/London"))

CAMDEN_QUEUE = "the queue at the Camden Town branch is 40 minutes, one counter open @NorthbankHelp"
CAMDEN_MORE = (
    "@NorthbankHelp Camden Town branch queue is out the door again, only one cashier",
    "45 minute wait at Camden High Street today, just one counter staffed @NorthbankHelp",
    "@NorthbankHelp still queueing at the Camden Town branch, been here half an hour",
)
THANKS = "thanks @NorthbankHelp, the Deansgate staff were brilliant"
NO_PLACE = "your branch has no cash in the machine again"
# App-outage complaints the model rates medium severity, so "high" can only come from the spike.
OUTAGE = (
    "online banking down for me too @NorthbankHelp, error every time I log in",
    "@NorthbankHelp the app keeps crashing, can't see my balance",
    "@NorthbankHelp mobile banking not working, says service unavailable",
    "@NorthbankHelp the app just shows a spinning wheel, can't get in",
    "@NorthbankHelp website login page won't load",
    "@NorthbankHelp app not working again, error code 503",
    "@NorthbankHelp the app says something went wrong every time I open it",
    "@NorthbankHelp app stuck on the loading screen",
)

PRIYA = "p-ldn-camden-mgr"  # manager of ldn-camden, first route: chat #ldn-camden
CAMDEN_CHAT = "/chat/%23ldn-camden"
SOCIAL_CARE = "t-social-care"
DIGITAL = "t-digital-oncall"
ALEX = "p-digital-alex"  # on call for t-digital-oncall on Tuesdays 07:00-15:00
LINK = re.compile(re.escape(CONSOLE) + r"/i/([A-Za-z0-9_.\-]+)")


# -- helpers -------------------------------------------------------------------------------
_ids = iter(range(500_000, 10**9))


def post(text: str, *, minutes: float = 0.0) -> Post:
    """A post on X by a new customer, ``minutes`` after Tuesday 10:00 in London."""
    n = next(_ids)
    return Post(
        str(n), "x", Author(str(n), f"cust{n}"), text, TUESDAY_10 + timedelta(minutes=minutes)
    )


def triage(consumer: TriageConsumer) -> None:
    """Run the consumer's own loop until the stream has nothing left for it."""
    consumer.run(threading.Event(), until_idle=True)


def work(client: redis.Redis, settings: Settings) -> None:
    """One in-process burst worker, built as the worker entry point builds it."""
    worker = build_worker(
        client, [settings.notify.queue], settings.workers, worker_class=TriageSimpleWorker
    )
    worker.work(burst=True, with_scheduler=True, logging_level="WARNING")


def pending(store: Store) -> int:
    """Stream entries read by some consumer and not acknowledged."""
    info = store.r.xpending(store.stream_key, store.settings.ingest.consumer_group)
    return int(info["pending"])


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model() -> Path:
    """The installed model; trained with the project's own recipe and corpus if missing."""
    path = default_model_dir()
    if not (path / "config.cfg").is_file():
        train(load_corpus(CORPUS_DIR), seed=0, out_dir=path)
    return path


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def hook() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def triage_settings(redis_url: str, smtp: SmtpSink, hook: WebhookSink) -> Settings:
    """The sample configuration with paging pointed at the sinks, as ``bot.demo`` does it."""
    env = {
        "REDIS_URL": redis_url,
        "TRIAGE_X_BEARER_TOKEN": "test-token",
        "TRIAGE_SECRET_KEY": SECRET,
        "TRIAGE_NOTIFY__CONSOLE_BASE_URL": CONSOLE,
        "TRIAGE_NOTIFY__SMTP__HOST": "127.0.0.1",
        "TRIAGE_NOTIFY__SMTP__PORT": str(smtp.port),
        "TRIAGE_NOTIFY__SMTP__SECURITY": "none",
        "TRIAGE_NOTIFY__SMTP__AUTH": "false",
        "TRIAGE_NOTIFY__ROUTES__SMS__URL": hook.url("/sms") + "/{target}",
        "TRIAGE_NOTIFY__ROUTES__CHAT__URL": hook.url("/chat") + "/{channel}",
        "TRIAGE_NOTIFY__ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
    }
    return load_settings(ROOT / "config", environ=env)


@pytest.fixture(scope="module")
def built(model: Path, redis_url: str, triage_settings: Settings) -> Iterator[TriageConsumer]:
    """``build_consumer``'s wiring, built once: the model, branch index and routing load in
    seconds. Tests make fresh consumers from its parts."""
    client = redis.Redis.from_url(redis_url)
    consumer = build_consumer(triage_settings, client, name="built")
    assert isinstance(consumer, TriageConsumer)
    consumer.classify(["warm-up"])  # the first call loads spaCy's stop-word lists (~5 s)
    yield consumer
    client.close()


@pytest.fixture
def make_consumer(
    built: TriageConsumer, redis_client: redis.Redis, triage_settings: Settings
) -> Callable[..., TriageConsumer]:
    """A new member of the consumer group with the real classifier, locator and routing."""

    def make(name: str = "triage-1", settings: Settings | None = None) -> TriageConsumer:
        return TriageConsumer(
            Store(redis_client, settings or triage_settings),
            classify=built.classify,
            locate=built.locate,
            decide=built.decide,
            enqueue_page=built.enqueue_page,
            name=name,
        )

    return make


@pytest.fixture
def store(redis_client: redis.Redis, triage_settings: Settings) -> Store:
    s = Store(redis_client, triage_settings)
    s.ensure_group()
    return s


@pytest.fixture
def incidents(redis_client: redis.Redis, triage_settings: Settings) -> IncidentStore:
    return IncidentStore(redis_client, triage_settings.redis.key_prefix)


@pytest.fixture
def sinks(
    smtp: SmtpSink, hook: WebhookSink, triage_settings: Settings
) -> Iterator[tuple[SmtpSink, WebhookSink]]:
    """Empty sinks, and the workers of this process configured to page into them."""

    def clear() -> None:
        with hook.lock:
            hook.received.clear()
        with smtp.lock:
            smtp.messages.clear()
            smtp.received_at.clear()
            smtp.envelopes.clear()

    clear()
    workers.configure(triage_settings)
    yield smtp, hook
    clear()


@pytest.fixture
def hook_pages(sinks: tuple[SmtpSink, WebhookSink]) -> Callable[[], list[tuple[str, str]]]:
    """Pages received so far, as (where, text): webhook path, or ``mailto:`` address."""
    smtp, hook = sinks

    def received() -> list[tuple[str, str]]:
        # Sinks record a page before answering, and a burst worker returns after the answer.
        out = [(r.path, str(r.body.get("message", ""))) for r in hook.accepted()]
        with smtp.lock:
            messages = list(smtp.messages)
        out += [(f"mailto:{m['To']}", SmtpSink.text(m)) for m in messages]
        return out

    return received


def links_in(text: str) -> list[tuple[str, str]]:
    """(incident id, person id) of every console link in a page; each must verify."""
    out = []
    for token in LINK.findall(text):
        incident_id, person_id, nonce = links.load(token, links.VIEW, 3600, SECRET)
        assert nonce
        out.append((incident_id, person_id))
    return out


# -- tests ---------------------------------------------------------------------------------
def test_a_complaint_from_a_replay_file_pages_the_branch_manager_with_a_signed_link(
    tmp_path: Path,
    store: Store,
    incidents: IncidentStore,
    make_consumer: Callable[..., TriageConsumer],
    hook_pages: Callable[[], list[tuple[str, str]]],
    redis_client: redis.Redis,
    triage_settings: Settings,
) -> None:
    replay = tmp_path / "morning.jsonl"
    replay.write_bytes(line(x_payload(CAMDEN_QUEUE, n=1, created_at=x_time(TUESDAY_10))) + b"\n")
    Listener(store, [Supervised(ReplaySource(replay), finite=True)], heartbeat_every=0.5).run()
    [(_, stored)] = store.stream_posts()

    consumer = make_consumer()
    triage(consumer)

    [inc_id] = incidents.open_incidents()
    inc = incidents.get(inc_id)
    assert (inc.group, inc.branch_id, inc.category) == (
        "branch:ldn-camden:queue_wait",
        "ldn-camden",
        "queue_wait",
    )
    assert inc.complaint_count == 1 and inc.state == "open" and not inc.spike
    [complaint] = incidents.complaints(inc_id)
    assert complaint.post.uid == stored.uid and complaint.branch_id == "ldn-camden"
    assert complaint.location_evidence  # the locator says why
    plan = incidents.plan(inc_id)
    assert plan is not None
    assert (plan["owner_kind"], plan["owner"]) == ("branch_manager", PRIYA)
    assert plan["where"] == "Camden Town branch"  # how pages name it
    assert [r["person_id"] for r in plan["steps"][0]["recipients"]] == [PRIYA]
    assert consumer.stats.incidents_opened == 1 and pending(store) == 0

    work(redis_client, triage_settings)

    [(where, text)] = hook_pages()
    assert where == CAMDEN_CHAT  # Priya's first route
    assert "the queue at the Camden Town branch is 40 minutes" in text
    assert links_in(text) == [(inc_id, PRIYA)]
    inc = incidents.get(inc_id)
    assert inc.state == "paged" and inc.escalation_step == 0
    # the next escalation step waits its 15 minutes in RQ's scheduler
    queue = Queue(triage_settings.notify.queue, connection=redis_client)
    assert f"page-triage-{inc_id}-1" in queue.scheduled_job_registry.get_job_ids()


def test_the_same_post_ingested_three_times_has_its_effects_once(
    store: Store,
    incidents: IncidentStore,
    make_consumer: Callable[..., TriageConsumer],
    hook_pages: Callable[[], list[tuple[str, str]]],
    redis_client: redis.Redis,
    triage_settings: Settings,
) -> None:
    p = post(CAMDEN_QUEUE)
    consumer = make_consumer()

    def ingest_again() -> None:
        # A replay after a crash, once the dedupe key has expired: the stream gets it again.
        redis_client.delete(store.seen_key(p.uid))
        assert store.append(Batch([p])).added == 1

    assert store.append(Batch([p])).added == 1
    ingest_again()
    triage(consumer)  # twice in one batch, before any page went out
    work(redis_client, triage_settings)
    ingest_again()
    triage(consumer)  # and once more after the page went out
    work(redis_client, triage_settings)

    assert store.stream_length() == 3 and consumer.stats.entries == 3 and pending(store) == 0
    inc_id = incidents.incident_of(p.uid)
    assert inc_id is not None and incidents.all_ids() == [inc_id]
    inc = incidents.get(inc_id)
    assert inc.complaint_count == 1 and len(incidents.complaints(inc_id)) == 1
    kinds = [e.kind for e in incidents.timeline(inc_id)]
    assert kinds.count("complaint") == 1 and kinds.count("page_attempt") == 1
    [(where, text)] = hook_pages()
    assert where == CAMDEN_CHAT and links_in(text) == [(inc_id, PRIYA)]


def test_complaints_about_one_branch_and_category_are_one_incident_and_one_page(
    store: Store,
    incidents: IncidentStore,
    make_consumer: Callable[..., TriageConsumer],
    hook_pages: Callable[[], list[tuple[str, str]]],
    redis_client: redis.Redis,
    triage_settings: Settings,
) -> None:
    consumer = make_consumer()
    first = [post(CAMDEN_QUEUE), post(CAMDEN_MORE[0], minutes=3), post(CAMDEN_MORE[1], minutes=7)]
    store.append(Batch(first))
    triage(consumer)  # three complaints, one batch: one page job (the step guard)
    assert Queue(triage_settings.notify.queue, connection=redis_client).count == 1
    work(redis_client, triage_settings)
    store.append(Batch([post(CAMDEN_MORE[2], minutes=12)]))
    triage(consumer)  # joins the incident, already paged: no new page
    work(redis_client, triage_settings)

    [inc_id] = incidents.all_ids()
    inc = incidents.get(inc_id)
    assert inc.complaint_count == 4 and inc.branch_id == "ldn-camden"
    assert len(incidents.complaints(inc_id)) == 4 and inc.state == "paged"
    assert consumer.stats.complaints == 4 and consumer.stats.incidents_opened == 1
    [(where, text)] = hook_pages()
    assert where == CAMDEN_CHAT and links_in(text) == [(inc_id, PRIYA)]
    assert "3 complaints about queue wait at Camden Town branch" in text


@pytest.mark.parametrize("dies", ["after reading", "after storing its effects"])
def test_a_consumer_killed_before_acknowledging_is_taken_over_and_processed_once(
    dies: str,
    store: Store,
    incidents: IncidentStore,
    make_consumer: Callable[..., TriageConsumer],
    hook_pages: Callable[[], list[tuple[str, str]]],
    redis_client: redis.Redis,
    triage_settings: Settings,
) -> None:
    p = post(CAMDEN_QUEUE)
    store.append(Batch([p]))
    group = triage_settings.ingest.consumer_group

    # Consumer A reads the entry, maybe stores its effects, and dies before XACK.
    a = make_consumer("triage-a")
    rows = redis_client.xreadgroup(group, "triage-a", {store.stream_key: ">"}, count=10)
    [(entry_id, fields)] = rows[0][1]
    if dies == "after storing its effects":
        read = Post.from_json(fields[b"post"])
        [cls] = a.classify([read.text])
        a.handle(read, cls)
        assert incidents.incident_of(p.uid) is not None
    [row] = redis_client.xpending_range(store.stream_key, group, "-", "+", 10)
    assert row["consumer"] == b"triage-a" and row["message_id"] == entry_id

    # Consumer B takes over entries idle longer than reclaim_idle_seconds (XAUTOCLAIM).
    fast = triage_settings.model_copy(
        update={"triage": triage_settings.triage.model_copy(update={"reclaim_idle_seconds": 0.2})}
    )
    b = make_consumer("triage-b", fast)
    time.sleep(0.3)
    triage(b)
    work(redis_client, triage_settings)

    assert b.stats.reclaimed == 1 and b.stats.entries == 1
    assert pending(store) == 0
    assert redis_client.xpending_range(store.stream_key, group, "-", "+", 10) == []
    [inc_id] = incidents.all_ids()
    assert incidents.get(inc_id).complaint_count == 1 and incidents.get(inc_id).state == "paged"
    [(where, text)] = hook_pages()
    assert where == CAMDEN_CHAT and links_in(text) == [(inc_id, PRIYA)]


def test_a_thank_you_is_not_a_complaint(
    store: Store,
    incidents: IncidentStore,
    make_consumer: Callable[..., TriageConsumer],
    hook_pages: Callable[[], list[tuple[str, str]]],
    redis_client: redis.Redis,
    triage_settings: Settings,
) -> None:
    consumer = make_consumer()
    store.append(Batch([post(THANKS)]))
    triage(consumer)
    work(redis_client, triage_settings)

    assert consumer.stats.not_complaints == 1 and consumer.stats.complaints == 0
    assert consumer.stats.entries == 1 and pending(store) == 0  # triaged, acknowledged
    assert incidents.all_ids() == [] and incidents.open_incidents() == []
    assert hook_pages() == []


def test_a_branch_complaint_with_no_place_goes_to_the_social_care_team(
    store: Store,
    incidents: IncidentStore,
    make_consumer: Callable[..., TriageConsumer],
    hook_pages: Callable[[], list[tuple[str, str]]],
    redis_client: redis.Redis,
    triage_settings: Settings,
) -> None:
    consumer = make_consumer()
    store.append(Batch([post(NO_PLACE)]))
    triage(consumer)

    [inc_id] = incidents.all_ids()
    inc = incidents.get(inc_id)
    assert inc.group == "unroutable:facilities_atm"
    assert inc.branch_id is None and inc.team_id == SOCIAL_CARE
    assert consumer.stats.unroutable == 1
    plan = incidents.plan(inc_id)
    assert plan is not None
    assert (plan["owner_kind"], plan["owner"]) == ("unroutable", SOCIAL_CARE)
    step0 = [r["person_id"] for r in plan["steps"][0]["recipients"]]
    assert SOCIAL_CARE in step0  # the team's own channels, beside its on-call person

    work(redis_client, triage_settings)
    pages = hook_pages()
    team = [text for where, text in pages if where == "/chat/%23social-care"]
    assert len(team) == 1 and links_in(team[0]) == [(inc_id, SOCIAL_CARE)]
    assert "no cash in the machine" in team[0]
    assert {who for _, text in pages for _, who in links_in(text)} == set(step0)
    assert len(pages) == len(step0)  # one page per recipient
    assert incidents.get(inc_id).state == "paged"


def test_a_burst_of_app_outage_complaints_is_one_spike_incident_for_the_team(
    store: Store,
    incidents: IncidentStore,
    make_consumer: Callable[..., TriageConsumer],
    hook_pages: Callable[[], list[tuple[str, str]]],
    redis_client: redis.Redis,
    triage_settings: Settings,
) -> None:
    consumer = make_consumer()
    burst = [post(text, minutes=i / 3) for i, text in enumerate(OUTAGE)]  # 20 s apart
    store.append(Batch(burst))
    triage(consumer)

    [inc_id] = incidents.all_ids()
    inc = incidents.get(inc_id)
    assert inc.group == f"team:{DIGITAL}:online_outage" and inc.team_id == DIGITAL
    assert inc.complaint_count == len(OUTAGE)
    assert inc.spike and inc.severity == "high"  # every complaint alone was medium
    assert inc.spike_detail == "5 complaints about online outage in 5 minutes, normal is 0.0"
    assert consumer.stats.spikes == 1

    work(redis_client, triage_settings)
    pages = hook_pages()
    assert {who for _, text in pages for _, who in links_in(text)} == {ALEX, DIGITAL}
    assert len(pages) == 2  # one page each, for the whole burst
    assert all("normal is 0.0" in text for _, text in pages)


def test_a_spike_found_after_the_first_page_raises_the_incident_at_once(
    store: Store,
    incidents: IncidentStore,
    make_consumer: Callable[..., TriageConsumer],
    hook_pages: Callable[[], list[tuple[str, str]]],
    redis_client: redis.Redis,
    triage_settings: Settings,
) -> None:
    consumer = make_consumer()
    store.append(Batch([post(OUTAGE[0])]))
    triage(consumer)
    work(redis_client, triage_settings)
    [inc_id] = incidents.all_ids()
    first = hook_pages()
    assert {who for _, text in first for _, who in links_in(text)} == {ALEX, DIGITAL}

    # Five more within two minutes: a spike on an incident already paged pages its next
    # escalation step now, not in 15 minutes, and still once.
    store.append(Batch([post(t, minutes=(i + 1) / 3) for i, t in enumerate(OUTAGE[1:6])]))
    triage(consumer)
    assert incidents.get(inc_id).spike and consumer.stats.spikes == 1
    work(redis_client, triage_settings)
    triage(consumer)  # nothing new: no further page
    work(redis_client, triage_settings)

    plan = incidents.plan(inc_id)
    assert plan is not None
    step1 = {str(r["person_id"]) for r in plan["steps"][1]["recipients"]}
    later = hook_pages()[len(first) :]
    assert {who for _, text in later for _, who in links_in(text)} == step1
    assert len(later) == len(step1)
    assert all("normal is 0.0" in text for _, text in later)
    inc = incidents.get(inc_id)
    assert inc.state == "escalated" and inc.escalation_step == 1


def test_a_post_triage_cannot_handle_is_dead_lettered_and_the_stream_goes_on(
    built: TriageConsumer,
    store: Store,
    incidents: IncidentStore,
    redis_client: redis.Redis,
    triage_settings: Settings,
    tmp_path: Path,
) -> None:
    """Routing without a rule for queue_wait (a config the model outgrew): that post is set
    aside with the reason, the others are triaged, nothing stays pending."""
    import shutil

    import yaml

    from bot.components import decide
    from bot.routing import load_directory

    cdir = tmp_path / "config"
    shutil.copytree(ROOT / "config", cdir)
    routing = yaml.safe_load((cdir / "routing.yaml").read_text())
    del routing["categories"]["queue_wait"]
    (cdir / "routing.yaml").write_text(yaml.safe_dump(routing))
    partial = load_directory(cdir)
    consumer = TriageConsumer(
        Store(redis_client, triage_settings),
        classify=built.classify,
        locate=built.locate,
        decide=lambda complaint, now: decide(partial, complaint, now),
        enqueue_page=built.enqueue_page,
        name="partial",
    )
    store.append(Batch([post(CAMDEN_QUEUE), post(OUTAGE[0])]))
    triage(consumer)
    assert pending(store) == 0
    [dead] = store.dead_letters()
    assert dead["source"] == "triage" and "UnknownCategoryError" in dead["reason"]
    assert "queue_wait" in dead["reason"]
    assert [incidents.get(i).category for i in incidents.all_ids()] == ["online_outage"]
