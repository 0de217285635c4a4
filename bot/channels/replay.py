"""Replay a recorded stream: a file of X API v2 stream payloads, one JSON object a line.

Paced as fast as possible, at a fixed rate, or at the original pace (the gaps between the
posts' ``created_at``, optionally sped up). The checkpoint is the byte offset after the last line
stored, so a listener killed mid-file resumes where it stopped; lines repeated by the resume are
dropped by dedupe.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from bot.channels import Batch, CheckpointGetter, Rejected
from bot.channels.x import to_item
from bot.models import Post


class ReplaySource:
    """Posts from a recorded X stream file."""

    def __init__(
        self,
        path: Path,
        *,
        batch_size: int = 500,
        rate: float | None = None,
        original_pace: bool = False,
        speedup: float = 1.0,
        max_text_chars: int = 25_000,
    ) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"replay file not found: {path}")
        self.path = path
        self.batch_size = batch_size
        self.rate = rate
        self.original_pace = original_pace
        self.speedup = speedup
        self.max_text_chars = max_text_chars
        self.name = f"replay:{path.name}"
        # The checkpoint is keyed by the file's absolute path so two files never share one.
        digest = hashlib.sha1(str(path.resolve()).encode(), usedforsecurity=False).hexdigest()
        self.checkpoint_name = f"replay:{digest[:16]}"
        self.finished = threading.Event()

    def batches(self, stop: threading.Event, checkpoint: CheckpointGetter) -> Iterator[Batch]:
        start = int(checkpoint(self.checkpoint_name) or 0)
        started = time.monotonic()
        first_time: datetime | None = None
        sent = 0
        items: list[Post | Rejected] = []
        with self.path.open("rb") as f:
            f.seek(start)
            for line in f:
                if stop.is_set():
                    break
                raw = line.rstrip(b"\r\n")
                if raw.strip():
                    item = to_item(raw, self.name, self.max_text_chars)
                    items.append(item)
                    sent += 1
                    if self.original_pace and isinstance(item, Post):
                        first_time = first_time or item.created_at
                        due = (item.created_at - first_time).total_seconds() / self.speedup
                        self._wait_until(started + due, stop)
                    elif self.rate:
                        self._wait_until(started + sent / self.rate, stop)
                if len(items) >= self.batch_size or (items and self._paced()):
                    yield Batch(items, (self.checkpoint_name, str(f.tell())))
                    items = []
            if items:
                yield Batch(items, (self.checkpoint_name, str(f.tell())))
            elif not stop.is_set():
                yield Batch([], (self.checkpoint_name, str(f.tell())))
        if not stop.is_set():
            self.finished.set()

    def _paced(self) -> bool:
        """Paced replays write each post as it comes, like a live stream."""
        return self.original_pace or bool(self.rate and self.rate < 1000)

    @staticmethod
    def _wait_until(when: float, stop: threading.Event) -> None:
        delay = when - time.monotonic()
        if delay > 0:
            stop.wait(delay)
