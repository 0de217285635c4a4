"""RQ jobs that page people: one escalation step of one incident per job.

``page_step(incident_id, step)`` reloads the incident and its plan, returns early when the step
is done or the incident was acknowledged, pages each recipient of the step (bundling with other
pages owed to the same person), moves the incident to ``paged``/``escalated``, raises its
escalation step and schedules the next step with ``enqueue_in``. Side effects are guarded by
the records in :mod:`bot.store.pages` (claims with leases, attempts written before each call),
so RQ may run the job any number of times. Where a step must wait (the person's bundling
window, or another run's live lease) the job schedules its own continuation and returns.

``enqueue_page`` is how triage starts paging; ``cancel_pages`` is what the console calls after
an acknowledgement.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from rq import Queue, Retry, get_current_job
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from bot.config import Settings
from bot.errors import (
    DeliveryError,
    DeliveryUncertainError,
    LeaseLostError,
    PageFailedError,
    RouteUnavailableError,
)
from bot.models import ESCALATED, OPEN, PAGED, Incident
from bot.notify import links, messages
from bot.notify.messages import Message, PageItem
from bot.notify.send import Route, deliver, idempotency_id, mask_target
from bot.notify.settings import NotifySettings
from bot.store.incidents import IncidentStore, TransitionError
from bot.store.pages import Delivery, PageStore, parse_member
from workers import config

log = logging.getLogger(__name__)

WHO = "triagebot"
ACTIVE = (OPEN, PAGED, ESCALATED)
BUSY_POLL_MS = 5_000


@dataclass(frozen=True, slots=True)
class _Wait:
    """A recipient whose page must wait ``ms`` (bundling window or another run's lease)."""

    ms: int
    why: str


def page_step(incident_id: str, step: int) -> str:
    """Page the recipients of escalation ``step`` of ``incident_id``; an outcome summary."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("page_step runs inside an RQ job")
    return _Pager(job).run(incident_id, int(step))


def schedule_step(
    queue: Queue,
    notify: NotifySettings,
    incident_id: str,
    step: int,
    job_id: str,
    delay_s: float = 0.0,
) -> None:
    """Queue (or schedule in ``delay_s``) ``page_step`` under ``job_id``; a job already there
    under that id stands: the run that repeats one that already scheduled it adds nothing."""
    options = {"job_id": job_id, "unique": True, **job_options(notify)}
    try:
        if delay_s > 0:
            queue.enqueue_in(timedelta(seconds=delay_s), page_step, incident_id, step, **options)
        else:  # due now: straight to the queue, not through the scheduler's next tick
            queue.enqueue(page_step, incident_id, step, **options)
    except DuplicateJobError:
        pass


def page_job_id(prefix: str, incident_id: str, step: int) -> str:
    """The RQ job id of one escalation step: one job per step, per deployment (key prefix)."""
    return f"page-{prefix}-{incident_id}-{step}"


def enqueue_page(
    queue: Queue,
    settings: Settings,
    incident_id: str,
    *,
    notify: NotifySettings | None = None,
) -> Job:
    """Start paging an incident (step 0): what triage calls once the plan is stored.

    The step's pages are registered before the job is queued, so a job running for another
    incident of the same person can take this one into its message (bundling). Enqueueing
    twice queues one job.
    """
    cfg_notify = notify if notify is not None else settings.notify
    prefix = settings.redis.key_prefix
    pages = PageStore(queue.connection, prefix, cfg_notify.retention_days * 86400)
    plan = IncidentStore(queue.connection, prefix).plan(incident_id)
    spec = _step_spec(plan, 0)
    for rec in spec["recipients"] if spec else []:
        pages.register(incident_id, 0, str(rec["person_id"]))
    job_id = page_job_id(prefix, incident_id, 0)
    try:
        job = queue.enqueue(
            page_step, incident_id, 0, job_id=job_id, unique=True, **job_options(cfg_notify)
        )
    except DuplicateJobError:
        job = Job.fetch(job_id, connection=queue.connection)
    pages.add_job(incident_id, job_id)
    return job


def escalate_now(queue: Queue, settings: Settings, incident_id: str) -> str | None:
    """Page the next escalation step now instead of when it is due: what a spike on an
    incident already paged does ("raises" it). Returns the job id, or None when there is no
    next step or the incident is no longer active.

    The next step's job keeps its id (``page-<incident>-<step>``), so a step is still paged at
    most once: a scheduled job is moved to the queue, a missing one is queued.
    """
    client = queue.connection
    incidents = IncidentStore(client, settings.redis.key_prefix)
    inc = incidents.get(incident_id)
    if inc.state not in ACTIVE:
        return None
    plan = incidents.plan(incident_id)
    # Paged means step 0 went out, even if its run has not yet recorded the step (a spike
    # can arrive between the two): the next step is at least 1.
    step = max(inc.escalation_step, 0 if inc.state != OPEN else -1) + 1
    if _step_spec(plan, step) is None:
        return None
    job_id = page_job_id(settings.redis.key_prefix, incident_id, step)
    try:
        job = Job.fetch(job_id, connection=client)
    except NoSuchJobError:
        job = None
    if job is None:
        schedule_step(queue, settings.notify, incident_id, step, job_id)
    elif job.get_status() == JobStatus.SCHEDULED:
        ScheduledJobRegistry(queue=queue).remove(job)
        queue.enqueue_job(job)
    return job_id


def cancel_pages(
    client: redis.Redis, settings: Settings, incident_id: str, *, retention_days: int = 30
) -> int:
    """Cancel what is still pending for an incident (after an acknowledgement): pages not yet
    claimed, and scheduled or queued paging jobs. Pages already being sent go out. Returns
    how many jobs were cancelled; running jobs see the state and return early anyway."""
    prefix = settings.redis.key_prefix
    pages = PageStore(client, prefix, retention_days * 86400)
    plan = IncidentStore(client, prefix).plan(incident_id)
    for s in plan.get("steps", []) if plan else []:
        for rec in s.get("recipients", []):
            pages.cancel_item(incident_id, int(s["step"]), str(rec["person_id"]))
    cancelled = 0
    for job_id in pages.jobs(incident_id):
        try:
            job = Job.fetch(job_id, connection=client)
            if job.get_status() in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.DEFERRED):
                job.cancel()
                cancelled += 1
        except (NoSuchJobError, InvalidJobOperation):
            continue
    return cancelled


def job_options(notify: NotifySettings) -> dict[str, Any]:
    """RQ options of every paging job: timeout, retries with backoff, result lifetimes."""
    intervals = list(notify.page_retry_seconds)
    return {
        "job_timeout": notify.page_job_timeout_seconds,
        "retry": Retry(max=len(intervals), interval=intervals),
        "result_ttl": 86_400,
        "failure_ttl": notify.retention_days * 86_400,
    }


def _step_spec(plan: dict[str, Any] | None, step: int) -> dict[str, Any] | None:
    if not plan:
        return None
    for s in plan.get("steps", []):
        if int(s.get("step", -1)) == step:
            return dict(s)
    return None


class _Pager:
    """One run of ``page_step``: the job's connection, settings and a unique owner token."""

    def __init__(self, job: Job) -> None:
        cfg = config()
        self.job = job
        self.settings = cfg.settings
        self.notify = cfg.notify
        self.conn = job.connection
        prefix = self.settings.redis.key_prefix
        self.incidents = IncidentStore(self.conn, prefix)
        self.pages = PageStore(self.conn, prefix, self.notify.retention_days * 86_400)
        self.queue = Queue(job.origin, connection=self.conn)
        self.owner = f"{job.id}/{uuid.uuid4().hex[:12]}"
        # Without retries left this run is the last: a person nobody could reach is given up.
        self.final_run = not job.retries_left
        secret = self.settings.secrets.secret_key
        if secret is None:
            raise RuntimeError("TRIAGE_SECRET_KEY is required to sign console links")
        self.secret = secret.get_secret_value()

    # -- the step ----------------------------------------------------------------------------
    def run(self, incident_id: str, step: int) -> str:
        if self.pages.step_done(incident_id, step):
            return "already done"
        try:
            inc = self.incidents.get(incident_id)
        except LookupError:
            log.warning("page_step: no incident %s", incident_id)
            return "no such incident"
        plan = self.incidents.plan(incident_id)
        if inc.state not in ACTIVE:
            cancel_pages(
                self.conn, self.settings, incident_id, retention_days=self.notify.retention_days
            )
            self.pages.finish_step(incident_id, step, f"skipped: {inc.state}")
            return f"skipped: incident is {inc.state}"
        spec = _step_spec(plan, step)
        if spec is None or not spec.get("recipients"):
            self.incidents.add_timeline(
                incident_id, "page_skipped", WHO, {"step": step, "reason": "no recipients"}
            )
            self.pages.finish_step(incident_id, step, "no recipients")
            return "no recipients"

        results: dict[str, str] = {}
        waits: list[_Wait] = []
        failed: list[str] = []
        for rec in spec["recipients"]:
            person = str(rec["person_id"])
            outcome = self._page_person(inc, step, rec)
            if isinstance(outcome, _Wait):
                waits.append(outcome)
            else:
                results[person] = outcome
                if outcome == "retry":
                    failed.append(person)
        reached = any(o in ("sent", "uncertain") for o in results.values())
        if reached or not (waits or failed):
            # Someone has the page (or nobody can be reached at all): the incident moves and
            # the escalation clock runs now, whatever happens to the other recipients.
            self._advance(incident_id, step, spec, results, plan)
        if failed:
            raise PageFailedError(
                f"incident {incident_id} step {step}: not reached on any route: "
                + ", ".join(failed)
            )
        if waits:
            wait = max(waits, key=lambda w: w.ms)
            self._continue_later(incident_id, step, wait.ms)
            return f"waiting {wait.ms} ms ({wait.why})"
        self.pages.finish_step(incident_id, step, ",".join(f"{p}={o}" for p, o in results.items()))
        return "done: " + ", ".join(f"{p} {o}" for p, o in results.items())

    def _advance(
        self,
        incident_id: str,
        step: int,
        spec: dict[str, Any],
        results: dict[str, str],
        plan: dict[str, Any] | None,
    ) -> None:
        """State, escalation step and the next step, once every recipient is settled."""
        inc = self.incidents.get(incident_id)
        reached = [p for p, o in results.items() if o in ("sent", "uncertain")]
        if reached and inc.state in ACTIVE:
            to = PAGED if inc.state == OPEN else (ESCALATED if step > 0 else None)
            if to is not None:
                names = [str(r.get("name", r["person_id"])) for r in spec["recipients"]]
                try:
                    self.incidents.transition(
                        incident_id,
                        to,
                        WHO,
                        {"step": step, "recipients": names, "outcomes": results},
                    )
                except TransitionError:  # acknowledged meanwhile: nothing to move
                    pass
        self.pages.raise_escalation_step(self.incidents.key(incident_id), step)
        nxt = _step_spec(plan, step + 1)
        inc = self.incidents.get(incident_id)
        if nxt is None or inc.state not in ACTIVE:
            return
        first = self.pages.step_done_at(incident_id, 0) if step > 0 else None
        start = first if first is not None else time.time()
        after_s = float(nxt.get("after_minutes", 0)) * 60
        delay = max(0.0, start + after_s - time.time())
        job_id = page_job_id(self.settings.redis.key_prefix, incident_id, step + 1)
        schedule_step(self.queue, self.notify, incident_id, step + 1, job_id, delay)
        self.pages.add_job(incident_id, job_id)

    def _continue_later(self, incident_id: str, step: int, wait_ms: int) -> None:
        # RQ schedules in whole seconds: one more second so the continuation never runs early.
        due = int(time.time() + wait_ms / 1000) + 1
        job_id = f"{page_job_id(self.settings.redis.key_prefix, incident_id, step)}-w{due}"
        schedule_step(self.queue, self.notify, incident_id, step, job_id, due - time.time())
        self.pages.add_job(incident_id, job_id)

    # -- one person --------------------------------------------------------------------------
    def _page_person(self, inc: Incident, step: int, rec: dict[str, Any]) -> str | _Wait:
        person = str(rec["person_id"])
        self.pages.register(inc.id, step, person)
        for _ in range(3):  # a concurrent run may claim the item between our reads
            item = self.pages.item(inc.id, step, person)
            if item.final:
                return item.state
            if item.delivery is None:
                opened = self._open(inc, step, rec)
                if isinstance(opened, _Wait):
                    return opened
                if opened is None:
                    continue
                delivery_id = opened
            else:
                delivery_id = item.delivery
                claim = self.pages.take_over(
                    delivery_id, owner=self.owner, lease_s=self._lease(None)
                )
                if claim.status == "busy":
                    # Look again soon: the owner usually finishes well before its lease ends.
                    wait = min(claim.wait_ms, BUSY_POLL_MS)
                    return _Wait(wait, "another run holds the delivery")
                if claim.status == "final":
                    return claim.state
                if claim.status == "missing":
                    log.error("page item %s/%s/%s names a missing delivery", inc.id, step, person)
                    return "uncertain"
            delivery = self.pages.delivery(delivery_id)
            if delivery is None:
                continue
            return self._send(delivery)
        raise LeaseLostError(f"could not settle the page of {person} for {inc.id} step {step}")

    def _open(self, inc: Incident, step: int, rec: dict[str, Any]) -> str | _Wait | None:
        """Claim this page (and other pending ones for the person) as a new delivery."""
        person = str(rec["person_id"])
        window = self.notify.bundle_window_seconds
        if window and inc.severity != "high":
            left = self.pages.window_left_ms(person)
            if left > 0:
                self.incidents.add_timeline(
                    inc.id,
                    "page_held",
                    WHO,
                    {
                        "step": step,
                        "person_id": person,
                        "seconds": round(left / 1000, 1),
                        "reason": "bundling window: the person was paged moments ago",
                    },
                )
                return _Wait(left, "bundling window")
        others = self._bundle_candidates(person, (inc.id, step))
        routes = [(str(r["kind"]), str(r["target"])) for r in rec.get("routes", [])]
        opened = self.pages.open_delivery(
            (inc.id, step),
            person,
            str(rec.get("name", person)),
            routes,
            others,
            owner=self.owner,
            lease_s=self._lease(None),
            window_s=window,
        )
        return opened[0] if opened else None

    def _bundle_candidates(self, person: str, lead: tuple[str, int]) -> list[tuple[str, int]]:
        """Other pages owed to ``person`` whose incidents still need someone."""
        out: list[tuple[str, int]] = []
        for incident_id, step in self.pages.pending(person):
            if (incident_id, step) == lead:
                continue
            try:
                other = self.incidents.get(incident_id)
            except LookupError:
                continue
            if other.state not in ACTIVE:
                self.pages.cancel_item(incident_id, step, person)
                continue
            out.append((incident_id, step))
            if len(out) >= self.notify.bundle_max_items - 1:
                break
        return out

    def _send(self, delivery: Delivery) -> str:
        items = self._items(delivery)
        journal = _Journal(self, delivery)
        routes = [Route(k, t) for k, t in delivery.routes]
        page_id = idempotency_id(delivery.id, -1, "page")

        def compose(route: Route) -> Message:
            cfg = self.notify.route(route.kind)
            fmt = cfg.format if cfg is not None else "text"
            return messages.compose(
                route.kind,
                fmt,
                company=self.settings.company.name,
                person_name=delivery.person_name,
                items=items,
                page_id=page_id,
                sms_max_chars=self.notify.sms_max_chars,
            )

        def ids(index: int, route: Route) -> str:
            return idempotency_id(delivery.id, index, route.kind)

        outcome = deliver(self.notify, routes, compose, ids, journal)
        if outcome != "failed":
            return outcome
        state = "failed" if self.final_run else "retry"
        if not self.pages.complete(delivery, owner=self.owner, state=state):
            raise LeaseLostError(f"delivery {delivery.id} was taken over")
        if state == "failed":
            for incident_id, step in journal.bundle:
                self.incidents.add_timeline(
                    incident_id,
                    "page_failed",
                    WHO,
                    {
                        "step": step,
                        "person_id": delivery.person_id,
                        "person": delivery.person_name,
                        "reason": "every route failed on every attempt, after every retry",
                    },
                )
        return state

    def _items(self, delivery: Delivery) -> list[PageItem]:
        out = []
        for m in delivery.members:
            incident_id, step = parse_member(m)
            token = links.sign(incident_id, delivery.person_id, links.VIEW, self.secret)
            out.append(
                PageItem(
                    incident=self.incidents.get(incident_id),
                    complaints=self.incidents.complaints(incident_id),
                    step=step,
                    link=links.incident_url(self.notify.console_base_url, token),
                    where=str((self.incidents.plan(incident_id) or {}).get("where", "")),
                )
            )
        return out

    def _lease(self, kind: str | None) -> float:
        """How long a claim lasts: one attempt's worst case on ``kind`` (any kind if None)
        plus the margin. Renewed before every attempt and every backoff sleep."""
        return self.notify.attempt_bound_seconds(kind) + self.notify.lease_margin_seconds


class _Journal:
    """Attempts of one delivery: Redis records before and after each call, and the timeline
    of every incident in the bundle."""

    def __init__(self, pager: _Pager, delivery: Delivery) -> None:
        self.p = pager
        self.d = delivery
        self.bundle = [parse_member(m) for m in delivery.members]
        self._sleep: Callable[[float], None] = time.sleep

    def route_state(self, index: int) -> tuple[str, int]:
        return self.d.route_states.get(index, ("", 0))

    def begin(self, index: int, route: Route, attempt: int) -> None:
        ok = self.p.pages.begin_attempt(
            self.d.id,
            owner=self.p.owner,
            index=index,
            attempt=attempt,
            lease_s=self.p._lease(route.kind),
        )
        if not ok:
            raise LeaseLostError(f"delivery {self.d.id} was taken over")

    def sent(self, index: int, route: Route, attempt: int) -> None:
        if not self.p.pages.complete(self.d, owner=self.p.owner, state="sent", index=index):
            raise LeaseLostError(f"delivery {self.d.id} was taken over after sending")
        self._record(index, route, attempt, "sent")

    def failed(
        self, index: int, route: Route, attempt: int, error: DeliveryError, final: bool
    ) -> None:
        state = (
            "unavailable"
            if isinstance(error, RouteUnavailableError)
            else ("exhausted" if final else "failed")
        )
        ok = self.p.pages.finish_attempt(
            self.d.id,
            owner=self.p.owner,
            index=index,
            state=state,
            lease_s=self.p._lease(None),
        )
        if isinstance(error, DeliveryUncertainError):
            result = "uncertain"  # a deduping provider: sent again with the same id
        else:
            result = "failed" if state == "exhausted" else state
        self._record(index, route, attempt, result, str(error))
        if not ok:
            raise LeaseLostError(f"delivery {self.d.id} was taken over")

    def uncertain(self, index: int, route: Route, attempt: int, reason: str) -> None:
        if not self.p.pages.complete(self.d, owner=self.p.owner, state="uncertain", index=index):
            raise LeaseLostError(f"delivery {self.d.id} was taken over")
        self._record(index, route, attempt, "uncertain", reason)

    def wait(self, seconds: float) -> None:
        lease = seconds + self.p._lease(None)
        if not self.p.pages.renew(self.d.id, owner=self.p.owner, lease_s=lease):
            raise LeaseLostError(f"delivery {self.d.id} was taken over")
        self._sleep(seconds)

    def _record(self, index: int, route: Route, attempt: int, result: str, error: str = "") -> None:
        others = [i for i, _ in self.bundle]
        for incident_id, step in self.bundle:
            detail: dict[str, Any] = {
                "step": step,
                "person_id": self.d.person_id,
                "person": self.d.person_name,
                "route": route.kind,
                "target": mask_target(route.kind, route.target),
                "attempt": attempt,
                "result": result,
                "page_id": idempotency_id(self.d.id, index, route.kind),
            }
            if error:
                detail["error"] = error
            if len(others) > 1:
                detail["bundle"] = others
            self.p.incidents.add_timeline(incident_id, "page_attempt", WHO, detail)
