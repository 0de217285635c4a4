"""The triage consumer: stream entries → classify → locate → route → incidents → pages.

Reads the posts stream through a consumer group, so any number of consumers share the work.
An entry is acknowledged only after its effects are stored (the complaint is on its incident,
the page job is queued), so a consumer killed at any point leaves the entry pending; another
consumer (or the same one restarted) reclaims entries idle longer than
``triage.reclaim_idle_seconds`` with XAUTOCLAIM and processes them again. Every effect is
idempotent (a complaint joins its incident once; page jobs guard their steps), so processing an
entry twice has its effects once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from bot.channels import Batch, Rejected
from bot.config import Settings
from bot.models import Classification, Complaint, Post
from bot.spikes import Spike, SpikeRule, detect
from bot.store import Store
from bot.store.incidents import IncidentStore
from bot.store.rates import RateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a complaint is: the branch (or None) with the evidence that decided it."""

    branch_id: str | None
    confidence: float
    evidence: tuple[str, ...]
    area: str | None = None  # a wider dimension for spike detection (region, city)


@dataclass(frozen=True, slots=True)
class Decision:
    """Who owns a complaint: the grouping key of its incident and the paging plan."""

    group: str  # "branch:<id>:<category>", "team:<id>:<category>" or "unroutable:<category>"
    team_id: str | None
    plan: dict[str, Any]
    unroutable: bool = False


Classify = Callable[[list[str]], list[Classification]]
Locate = Callable[[Post, Classification], Placement]
Decide = Callable[[Complaint, float], Decision]
EnqueuePage = Callable[[str, str], None]  # (incident id, reason: "new" | "spike")


@dataclass
class TriageStats:
    entries: int = 0
    complaints: int = 0
    not_complaints: int = 0
    unroutable: int = 0
    incidents_opened: int = 0
    spikes: int = 0
    reclaimed: int = 0
    dead_lettered: int = 0
    last_error: str = ""
    categories: dict[str, int] = field(default_factory=dict)


class TriageConsumer:
    """One member of the triage consumer group."""

    def __init__(
        self,
        store: Store,
        *,
        classify: Classify,
        locate: Locate,
        decide: Decide,
        enqueue_page: EnqueuePage,
        name: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings: Settings = store.settings
        prefix = self.settings.redis.key_prefix
        self.incidents = IncidentStore(store.r, prefix)
        self.rates = RateStore(store.r, prefix)
        self.classify = classify
        self.locate = locate
        self.decide = decide
        self.enqueue_page = enqueue_page
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock
        self.stats = TriageStats()
        t = self.settings.triage
        self.spike_rule = SpikeRule(
            t.spike.window_minutes, t.spike.baseline_hours, t.spike.min_count, t.spike.factor
        )
        self.group = self.settings.ingest.consumer_group

    # -- the loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, until_idle: bool = False) -> None:
        """Process entries until ``stop``; with ``until_idle``, return when none are left."""
        self.store.ensure_group()
        next_reclaim = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_reclaim:
                    self.reclaim()
                    next_reclaim = time.monotonic() + self.settings.triage.reclaim_idle_seconds / 4
                done = self.read_and_process(block_ms=0 if until_idle else None)
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                self.stats.last_error = str(exc)
                log.warning("redis unavailable (%s); retrying in 1 s", exc)
                stop.wait(1.0)
                continue
            if until_idle and done == 0:
                return

    def read_and_process(self, block_ms: int | None = None) -> int:
        """Read new entries for this consumer and process them; how many."""
        t = self.settings.triage
        rows: Any = self.store.r.xreadgroup(
            self.group,
            self.name,
            {self.store.stream_key: ">"},
            count=t.batch_size,
            block=t.block_ms if block_ms is None else block_ms or None,
        )
        entries: list[tuple[bytes, dict[bytes, bytes]]] = rows[0][1] if rows else []
        self.process(entries)
        return len(entries)

    def reclaim(self) -> int:
        """Take over entries another consumer read but never acknowledged (it died)."""
        idle_ms = int(self.settings.triage.reclaim_idle_seconds * 1000)
        start = "0-0"
        total = 0
        while True:
            result = self.store.r.xautoclaim(
                self.store.stream_key,
                self.group,
                self.name,
                idle_ms,
                start_id=start,
                count=self.settings.triage.batch_size,
            )
            start, entries = result[0], result[1]
            entries = [e for e in entries if e[1]]  # deleted entries come back empty
            if entries:
                self.stats.reclaimed += len(entries)
                self.process(entries)
                total += len(entries)
            if start in (b"0-0", "0-0"):
                return total

    # -- one batch --------------------------------------------------------------------------
    def process(self, entries: Sequence[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Triage a batch of stream entries and acknowledge them once their effects are stored."""
        if not entries:
            return
        posts: list[tuple[bytes, Post]] = []
        bad: list[bytes] = []
        for entry_id, fields in entries:
            try:
                posts.append((entry_id, Post.from_json(fields[b"post"], fields.get(b"raw", b""))))
            except Exception as exc:  # a corrupt entry must not block the stream forever
                log.error("stream entry %s unreadable: %s", entry_id, exc)
                bad.append(entry_id)
        classifications = self.classify([p.text for _, p in posts]) if posts else []
        before = vars(self.stats).copy()
        for (_entry, post), cls in zip(posts, classifications, strict=True):
            try:
                self.handle(post, cls)
            except redis.RedisError:
                raise  # the entry stays pending and is retried
            except Exception as exc:  # one bad post must not stop the stream: set it aside
                log.exception("post %s could not be triaged; dead-lettered", post.uid)
                reason = f"triage failed: {type(exc).__name__}: {exc}"
                self.store.append(Batch([Rejected("triage", reason, post.to_json())]))
                self.stats.dead_lettered += 1
        ids = [e for e, _ in posts] + bad
        self.store.r.xack(self.store.stream_key, self.group, *ids)
        self.stats.entries += len(ids)
        self.store.count(
            {k: v - before[k] for k, v in vars(self.stats).items() if isinstance(v, int)}
        )

    def handle(self, post: Post, cls: Classification) -> None:
        """The effects of one classified post."""
        if not cls.complaint:
            self.stats.not_complaints += 1
            return
        self.stats.complaints += 1
        self.stats.categories[cls.category] = self.stats.categories.get(cls.category, 0) + 1
        place = self.locate(post, cls)
        complaint = Complaint(
            post=post,
            category=cls.category,
            severity=cls.severity,
            probability=cls.probability,
            branch_id=place.branch_id,
            location_confidence=place.confidence,
            location_evidence=place.evidence,
            severity_reasons=cls.severity_reasons,
        )
        # Event time: when the customer posted (never later than now). Grouping windows, spike
        # rates and who is on duty all follow it, so a backlog or a replay is judged as it
        # happened.
        now = min(post.created_at.timestamp(), self.clock())
        decision = self.decide(complaint, now)
        if decision.unroutable:
            self.stats.unroutable += 1
        window = self.settings.triage.group_window_minutes * 60
        incident_id, created, _added = self.incidents.add_complaint(
            complaint, group=decision.group, team_id=decision.team_id, window_s=window, now=now
        )
        if created:
            self.stats.incidents_opened += 1
        # Page when the incident is new, and again on a re-run if it never got paged (a consumer
        # died between storing the complaint and queueing the page); page jobs guard their steps.
        # An incident past "open" was paged, so its plan is stored already.
        if created or self.incidents.get(incident_id).state == "open":
            self.incidents.set_plan(incident_id, decision.plan)
            self.enqueue_page(incident_id, "new")
        for spike in self._spikes(complaint, decision, place, now):
            if self.incidents.mark_spike(incident_id, spike.describe(_label(spike.dimension))):
                self.stats.spikes += 1
                self.enqueue_page(incident_id, "spike")

    def _spikes(
        self, complaint: Complaint, decision: Decision, place: Placement, now: float
    ) -> list[Spike]:
        """Spikes this complaint is part of, on dimensions its incident stands for: its own
        group always; the whole category only for incidents that are category-wide (a team's,
        or the unroutable queue's); the branch's area for branch incidents."""
        cat = complaint.category
        dims = [f"group:{decision.group}"]
        if decision.group.startswith("branch:"):
            if place.area:
                dims.append(f"area:{place.area}:{cat}")
        else:
            dims.append(f"category:{cat}")
        t = self.settings.triage.spike
        counts = self.rates.record(
            dims, complaint.post.uid, now, t.window_minutes * 60, t.baseline_hours * 3600
        )
        return detect(self.spike_rule, counts)


def _label(dimension: str) -> str:
    """A reader's name for a spike dimension: 'category:online_outage' → 'online outage'."""
    kind, _, rest = dimension.partition(":")
    return rest.rsplit(":", 1)[-1].replace("_", " ") if kind != "area" else rest.replace(":", " ")
