"""Evaluate the locator on a labelled JSONL set (``tests/data/geo_posts.jsonl``).

Each line: ``{"text", "coordinates": [lat, lon] | null, "place": {...} | null,
"profile_location", "expected": branch id | "unroutable", "note"}``.

Precision = correct / routed to a branch; recall = correct / posts whose expected is a branch.
A post routed to a branch when "unroutable" was expected counts against precision.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.errors import DataError
from bot.geo.locate import Locator
from bot.geo.settings import build_locator
from bot.models import Author, Place, Post

UNROUTABLE = "unroutable"
_KEYS = {"text", "coordinates", "place", "profile_location", "expected", "note"}


def load_labelled(path: Path | str) -> list[tuple[int, Post, str, str]]:
    """(line number, post, expected, note) for every line; DataError names the bad line."""
    out = []
    created = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or set(row) != _KEYS:
                raise DataError(f"{where}: keys must be exactly {sorted(_KEYS)}")
            coords = row["coordinates"]
            p = row["place"]
            try:
                post = Post(
                    id=str(n),
                    platform="eval",
                    author=Author(str(n), f"user{n}", "", str(row["profile_location"])),
                    text=str(row["text"]),
                    created_at=created,
                    coordinates=(float(coords[0]), float(coords[1])) if coords else None,
                    place=None if p is None else Place.from_dict(p),
                )
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise DataError(f"{where}: invalid coordinates or place ({exc!r})") from None
            out.append((n, post, str(row["expected"]), str(row["note"])))
    return out


def evaluate_locator(path: Path | str, locator: Locator | None = None) -> dict[str, Any]:
    """Precision, recall and mistakes of ``locator`` (default: the sample bank's) on ``path``."""
    locator = locator or build_locator()
    rows = load_labelled(path)
    unknown = [
        (n, exp) for n, _, exp, _ in rows if exp != UNROUTABLE and exp not in locator.registry
    ]
    if unknown:
        raise DataError(f"{path}: expected branches not in the registry: {unknown[:5]}")
    routed = correct = expected_branch = unroutable_right = 0
    mistakes = []
    for n, post, expected, note in rows:
        got = locator.locate(post)
        if expected != UNROUTABLE:
            expected_branch += 1
        if got.branch_id is not None:
            routed += 1
            if got.branch_id == expected:
                correct += 1
        elif expected == UNROUTABLE:
            unroutable_right += 1
        if (got.branch_id or UNROUTABLE) != expected:
            mistakes.append(
                {
                    "line": n,
                    "text": post.text,
                    "expected": expected,
                    "got": got.branch_id or UNROUTABLE,
                    "confidence": got.confidence,
                    "why": got.evidence[0].summary if got.evidence else "",
                    "note": note,
                }
            )
    return {
        "posts": len(rows),
        "expected_branch": expected_branch,
        "expected_unroutable": len(rows) - expected_branch,
        "routed": routed,
        "correct": correct,
        "wrong_branch": routed - correct,
        "unroutable_correct": unroutable_right,
        "precision": correct / routed if routed else 1.0,
        "recall": correct / expected_branch if expected_branch else 1.0,
        "mistakes": mistakes,
    }
