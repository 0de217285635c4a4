"""Plain metric arithmetic: binary precision/recall/F1 and per-category figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def binary_metrics(gold: Sequence[bool], predicted: Sequence[bool]) -> dict[str, Any]:
    """n, precision, recall, f1, accuracy (complaint is the positive class) and the counts."""
    tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g and p)
    fp = sum(1 for g, p in zip(gold, predicted, strict=True) if not g and p)
    fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g and not p)
    tn = len(gold) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": len(gold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": (tp + tn) / len(gold) if gold else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def category_metrics(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-category precision/recall/F1/support.

    The macro average is over the categories that occur in ``gold``: a category the evaluation
    set never uses has no recall to measure, and its predictions already count as errors
    against the gold categories' recall.
    """
    labels = sorted(set(gold) | set(predicted))
    per: dict[str, dict[str, float | int]] = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p == label)
        n_pred = sum(1 for p in predicted if p == label)
        support = sum(1 for g in gold if g == label)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
            "predicted": n_pred,
        }
    present = [label for label in labels if per[label]["support"]]
    correct = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p)
    return {
        "n": len(gold),
        "accuracy": correct / len(gold) if gold else 0.0,
        "macro_f1": sum(per[label]["f1"] for label in present) / len(present) if present else 0.0,
        "per_category": per,
    }


def best_threshold(gold: Sequence[bool], probabilities: Sequence[float]) -> tuple[float, float]:
    """The threshold (0.1..0.9) where F1, averaged over a ±0.05 window, is highest; and F1.

    The window smooths a small held-out set's jagged F1 curve, so the threshold moves less
    from one sample of posts to the next.
    """
    f1s = {
        step: binary_metrics(gold, [p >= step / 100 for p in probabilities])["f1"]
        for step in range(5, 96)
    }
    best_step = max(
        range(10, 91),
        key=lambda s: (sum(f1s[s + d] for d in range(-5, 6)) / 11, -abs(s - 50)),
    )
    return best_step / 100, f1s[best_step]
