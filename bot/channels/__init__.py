"""Platform channels: small protocols, one module per platform.

A *source* yields :class:`Batch` es of posts. Reply channels (``send(reply) -> receipt``, with
what a platform allows as data, not methods that raise "not supported") come with replies.
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
