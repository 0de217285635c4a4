"""Test data factories: X API v2 stream payloads and replay files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.channels.sandbox import tweet_payload

BASE_ID = 1_850_000_000_000_000_000


def x_payload(
    text: str = "queue at Camden is 40 min @NorthbankHelp", n: int = 1, **data: Any
) -> dict[str, Any]:
    """A filtered-stream payload for post number ``n``; ``data`` overrides tweet fields."""
    payload = tweet_payload(
        text,
        post_id=str(BASE_ID + n),
        username="ann_k",
        name="Ann",
        location="Camden, London",
        created_at=datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        place={
            "id": "pl1",
            "full_name": "Camden Town, London",
            "name": "Camden Town",
            "country_code": "GB",
            "bbox": [-0.15, 51.53, -0.13, 51.55],
        },
        matching_rules=[{"id": "1", "tag": "mentions"}],
    )
    payload["data"].pop("geo", None)  # the place is included; tests attach it with geo=
    payload["data"].update(data)
    return payload


def line(p: Any) -> bytes:
    return json.dumps(p, ensure_ascii=False).encode()


def replay_file(path: Path, n: int, *, extra_lines: list[bytes] = ()) -> Path:  # type: ignore[assignment]
    """``n`` distinct posts, one a line, then ``extra_lines`` as given (bad input, repeats)."""
    with path.open("wb") as f:
        for i in range(n):
            f.write(line(x_payload(f"post number {i} about the queue @NorthbankHelp", n=i)) + b"\n")
        for raw in extra_lines:
            f.write(raw + b"\n")
    return path
