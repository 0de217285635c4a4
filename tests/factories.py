"""Test data factories: X API v2 stream payloads and replay files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASE_ID = 1_850_000_000_000_000_000


def x_payload(
    text: str = "queue at Camden is 40 min @NorthbankHelp", n: int = 1, **data: Any
) -> dict[str, Any]:
    """A filtered-stream payload as X sends it, for post number ``n``."""
    tweet = {
        "id": str(BASE_ID + n),
        "text": text,
        "author_id": "42",
        "created_at": "2026-11-22T09:00:00.000Z",
        "lang": "en",
        "conversation_id": str(BASE_ID + n),
        "entities": {"mentions": [{"start": 26, "end": 40, "username": "NorthbankHelp"}]},
        **data,
    }
    return {
        "data": tweet,
        "includes": {
            "users": [
                {"id": "42", "username": "ann_k", "name": "Ann", "location": "Camden, London"}
            ],
            "places": [
                {
                    "id": "pl1",
                    "full_name": "Camden Town, London",
                    "name": "Camden Town",
                    "country_code": "GB",
                    "geo": {"type": "Feature", "bbox": [-0.15, 51.53, -0.13, 51.55]},
                }
            ],
        },
        "matching_rules": [{"id": "1", "tag": "mentions"}],
    }


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
