"""The listener: sources → normalise → dedupe → the Redis stream, supervised.

Each source runs in its own thread and writes its batches itself (one atomic Redis call per
batch, see :meth:`bot.store.Store.append`). A source that raises is restarted with backoff; the
listener only ends when asked to (SIGTERM/SIGINT or ``stop``) or when every finite source
(a replay file) is done. Sources marked exclusive (the X stream: X allows one connection per
app) run only while this process holds their lock in Redis; a second listener stands by and
takes over when the holder dies and the lock expires.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from bot.channels import Batch, Source
from bot.store import Store

log = logging.getLogger(__name__)


@dataclass
class SourceStats:
    batches: int = 0
    added: int = 0
    duplicates: int = 0
    dead: int = 0
    restarts: int = 0
    last_error: str = ""


@dataclass
class Supervised:
    """A source with how to run it."""

    source: Source
    exclusive: bool = False  # hold a Redis lock named after the source while running
    finite: bool = False  # ends by itself (a replay file): do not restart when it returns
    stats: SourceStats = field(default_factory=SourceStats)


class Listener:
    """Runs sources until stopped, writing what they yield to the stream."""

    def __init__(
        self,
        store: Store,
        sources: Sequence[Supervised],
        *,
        stop: threading.Event | None = None,
        max_backoff: float = 60.0,
        heartbeat_every: float = 5.0,
    ) -> None:
        self.store = store
        self.sources = list(sources)
        self.stop = stop or threading.Event()
        self.max_backoff = max_backoff
        self.heartbeat_every = heartbeat_every
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lock_ttl = store.settings.ingest.lock_ttl_seconds

    def run(self) -> None:
        """Block until stopped or until every finite source is done."""
        self.store.ensure_group()
        threads = [
            threading.Thread(target=self._supervise, args=(s,), name=s.source.name, daemon=True)
            for s in self.sources
        ]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                self._beat()
                for t in threads:
                    t.join(timeout=self.heartbeat_every / max(1, len(threads)))
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=30)
            self._beat()

    def _beat(self) -> None:
        try:
            self.store.heartbeat(
                self.owner,
                {s.source.name: vars(s.stats) for s in self.sources},
                ttl_s=max(15, int(self.heartbeat_every * 3)),
            )
        except redis.RedisError as exc:
            log.warning("heartbeat not written: %s", exc)

    def _supervise(self, sup: Supervised) -> None:
        backoff = 1.0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                if sup.exclusive:
                    self._run_exclusive(sup)
                else:
                    self._drive(sup, self.stop)
                if sup.finite:
                    return
            except Exception as exc:  # supervision: any failure restarts the source
                sup.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("source %s failed; restarting", sup.source.name)
            if time.monotonic() - started > 60:
                backoff = 1.0
            sup.stats.restarts += 1
            if self.stop.wait(backoff):
                return
            backoff = min(backoff * 2, self.max_backoff)

    def _drive(self, sup: Supervised, stop: threading.Event) -> None:
        for batch in sup.source.batches(stop, self.store.checkpoint):
            self._append_with_retry(sup, batch)

    def _append_with_retry(self, sup: Supervised, batch: Batch) -> None:
        """Store a batch; while Redis is unreachable keep trying until stopped.

        Giving up on stop loses nothing that a restart cannot recover: checkpointed sources
        re-read from their last stored position.
        """
        wait = 0.1
        while True:
            try:
                result = self.store.append(batch)
                break
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                log.warning("redis unavailable (%s); retrying the batch in %.1f s", exc, wait)
                if self.stop.wait(wait):
                    raise
                wait = min(wait * 2, 5.0)
        sup.stats.batches += 1
        sup.stats.added += result.added
        sup.stats.duplicates += result.duplicates
        sup.stats.dead += result.dead

    def _run_exclusive(self, sup: Supervised) -> None:
        """Run the source only while holding its lock; stand by while another process does."""
        name = sup.source.name
        while not self.stop.is_set():
            if self.store.acquire_lock(name, self.owner, self.lock_ttl):
                break
            log.info("%s held by %s; standing by", name, self.store.lock_owner(name))
            if self.stop.wait(self.lock_ttl / 3):
                return
        if self.stop.is_set():
            return
        held = threading.Event()  # set when the lock is lost or we are stopping
        renewer = threading.Thread(target=self._renew, args=(name, held), daemon=True)
        renewer.start()
        try:
            self._drive(sup, held)
        finally:
            held.set()
            renewer.join(timeout=5)
            try:
                self.store.release_lock(name, self.owner)
            except redis.RedisError as exc:
                log.warning("could not release lock %s: %s", name, exc)

    def _renew(self, name: str, held: threading.Event) -> None:
        """Keep the lock alive; end ``held`` when stopping or when the lock is lost."""
        due = time.monotonic() + self.lock_ttl / 3
        while not held.is_set():
            if self.stop.wait(0.2):
                held.set()
                return
            if time.monotonic() < due:
                continue
            due = time.monotonic() + self.lock_ttl / 3
            try:
                if not self.store.renew_lock(name, self.owner, self.lock_ttl):
                    log.error("lost the %s lock; stopping that source", name)
                    held.set()
            except redis.RedisError as exc:
                log.warning("lock %s not renewed: %s", name, exc)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop``: sources finish their batch and the process exits."""

    def handler(signum: int, frame: object) -> None:
        log.info("signal %s: stopping after the current batch", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
