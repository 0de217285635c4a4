"""RQ job functions (``workers.pages``) and the worker entry point (``workers.main``).

Jobs take ids and reload state; the settings they need are installed once per worker process
with :func:`configure` (``run_worker`` does it before forking work horses, tests call it before
running a ``SimpleWorker``). The Redis connection is the one RQ gives the running job.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings
from bot.notify.settings import NotifySettings


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What job functions may read: validated, immutable settings."""

    settings: Settings
    notify: NotifySettings


_config: WorkerConfig | None = None


def configure(settings: Settings, notify: NotifySettings | None = None) -> WorkerConfig:
    """Install the settings job functions in this process use (``notify`` defaults to
    ``settings.notify``)."""
    global _config
    _config = WorkerConfig(settings, notify if notify is not None else settings.notify)
    return _config


def config() -> WorkerConfig:
    """The installed settings; RuntimeError if :func:`configure` was not called."""
    if _config is None:
        raise RuntimeError("workers.configure(settings) was not called in this process")
    return _config
