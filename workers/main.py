"""The worker entry point: an RQ worker with its scheduler, tuned to retry abandoned jobs fast.

A worker that dies (SIGKILL, OOM, a lost machine) leaves its job in the queue's
StartedJobRegistry. RQ 3 treats an entry whose heartbeat expired as abandoned during registry
maintenance (``StartedJobRegistry.cleanup``): it is retried when the job has retries left
(every paging job has, see ``workers.pages.job_options``) and failed otherwise. How fast that
happens is set by, from the RQ 3.0 source:

* the execution's heartbeat TTL: ``min(job timeout left, job_monitoring_interval) + 60`` in
  ``BaseWorker.get_heartbeat_ttl``; :class:`TriageWorker` replaces the fixed 60 s grace with
  ``heartbeat_grace_seconds``;
* ``maintenance_interval``: how often a worker cleans registries (default 600 s); checked only
  between dequeues, and an idle worker blocks in dequeue for ``worker_ttl - 15`` seconds, so
  ``worker_ttl`` bounds it too;
* the first retry interval of the job (scheduled by the worker's scheduler, polling each 1 s).

With the defaults below an abandoned page is retried within about
``monitoring 5 + grace 15 + max(maintenance 15, dequeue 20) + retry 5 + 1`` = 46 s. A job
wrongly judged abandoned (its worker stalled past the grace) runs twice; paging's claims make
that harmless.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import redis
from rq import Queue, SimpleWorker, Worker
from rq.job import Job

from bot.config import DEFAULT_QUEUES, Settings, WorkerSettings, load_settings
from bot.notify import messages, send
from bot.notify.settings import NotifySettings
from bot.store import connect
from workers import configure

log = logging.getLogger(__name__)


class _GraceMixin:
    """Heartbeat TTL of a running job: monitoring interval plus a configurable grace."""

    heartbeat_grace_seconds = 60
    job_monitoring_interval: int

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = int(max(0.0, min(job.timeout - working_time, interval)))
        return interval + self.heartbeat_grace_seconds


class TriageWorker(_GraceMixin, Worker):
    """RQ's forking worker (one work horse per job) with a short abandoned-job grace."""


class TriageSimpleWorker(_GraceMixin, SimpleWorker):
    """The same, running jobs in the worker process (tests, platforms without fork)."""


def build_worker(
    connection: redis.Redis,
    queues: Sequence[str],
    tuning: WorkerSettings | None = None,
    *,
    worker_class: type[Worker] = TriageWorker,
    name: str | None = None,
) -> Worker:
    """A worker on ``queues`` with the maintenance and heartbeat timing of ``tuning``."""
    t = tuning or WorkerSettings()
    worker = worker_class(
        [Queue(q, connection=connection) for q in queues],
        connection=connection,
        name=name,
        maintenance_interval=t.maintenance_interval_seconds,
        worker_ttl=t.worker_ttl_seconds,
        job_monitoring_interval=t.job_monitoring_interval_seconds,
    )
    if isinstance(worker, _GraceMixin):
        worker.heartbeat_grace_seconds = t.heartbeat_grace_seconds
    return worker


def warm_up() -> None:
    """Load what every paging job needs once, in the worker, so forked horses inherit it."""
    send.preload()
    messages.preload()


def run_worker(
    settings: Settings,
    queues: Sequence[str] = DEFAULT_QUEUES,
    burst: bool = False,
    *,
    notify: NotifySettings | None = None,
    tuning: WorkerSettings | None = None,
    connection: redis.Redis | None = None,
    worker_class: type[Worker] = TriageWorker,
) -> bool:
    """Run a worker (with its scheduler) until stopped, or until the queues are empty with
    ``burst``. Settings are installed for the jobs first; the Redis connection comes from
    ``settings`` unless given. True if any job ran."""
    cfg = configure(settings, notify)
    for problem in cfg.notify.problems():
        log.warning("paging: %s", problem)
    if settings.secrets.secret_key is None:
        log.warning("TRIAGE_SECRET_KEY is not set: paging jobs will fail to sign links")
    t = tuning or settings.workers
    warm_up()
    conn = connection if connection is not None else connect(settings)
    worker = build_worker(conn, list(queues), t, worker_class=worker_class)
    return bool(worker.work(burst=burst, with_scheduler=t.with_scheduler))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m workers.main [queue ...] [--burst]``: settings from config/ and env."""
    parser = argparse.ArgumentParser(description="Run a triagebot RQ worker.")
    parser.add_argument("queues", nargs="*", help="queues to serve (default: settings)")
    parser.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings()
    tuning = settings.workers
    queues = tuple(args.queues) or tuning.queues
    run_worker(settings, queues, burst=args.burst, tuning=tuning)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
