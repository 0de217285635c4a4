"""Platform channels: small protocols, one module per platform.

A *source* yields :class:`Batch` es of posts; a reply channel (added with replies) sends a reply
and returns a receipt. What a platform can do is data (:class:`Capabilities`), not methods that
raise "not supported".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from bot.models import Post


@dataclass(frozen=True, slots=True)
class Rejected:
    """A payload that could not become a Post: kept whole for the dead-letter list."""

    source: str
    reason: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Batch:
    """Items from a source, and the checkpoint to save once they are stored.

    The listener stores the items and the checkpoint in one Redis transaction, so a process
    killed between the two can only repeat posts (which dedupe drops), never skip them.
    """

    items: list[Post | Rejected] = field(default_factory=list)
    checkpoint: tuple[str, str] | None = None  # (checkpoint name, value)


CheckpointGetter = Callable[[str], str | None]


class Source(Protocol):
    """Something that yields posts until ``stop`` is set."""

    name: str

    def batches(self, stop: threading.Event, checkpoint: CheckpointGetter) -> Iterator[Batch]:
        """Yield batches until ``stop`` is set; ``checkpoint(name)`` gives the saved position."""
        ...


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a platform allows, as data."""

    max_length: int
    weighted_length: bool = False  # X counts some characters double (twitter-text)
    threads: bool = True
    direct_messages: bool = False
