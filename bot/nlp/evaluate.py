"""Evaluation of a trained classifier, and stratified K-fold cross-validation of the recipe."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.progress import Progress

from bot.nlp.data import Record
from bot.nlp.metrics import binary_metrics, category_metrics
from bot.nlp.pipeline import Classifier, load_classifier
from bot.nlp.splits import stratified_folds
from bot.nlp.train import TrainConfig, train_classifier


def evaluate(model: Classifier | str | Path, records: Sequence[Record]) -> dict[str, Any]:
    """Complaint metrics over all records; category metrics over categorised complaints.

    Returns n, precision, recall, f1, accuracy, threshold, tp/fp/fn/tn and, when any record
    has a category, ``category_n``, ``category_accuracy``, ``category_macro_f1`` and
    ``categories`` (per-category precision, recall, f1, support, predicted). The category of
    a post is judged on the true complaints whatever the complaint verdict was.
    """
    classifier = model if isinstance(model, Classifier) else load_classifier(model)
    results = classifier.classify_many([r.text for r in records])
    report = binary_metrics([r.complaint for r in records], [c.complaint for c in results])
    report["threshold"] = classifier.threshold
    categorised = [
        (r.category, c.category)
        for r, c in zip(records, results, strict=True)
        if r.complaint and r.category
    ]
    if categorised:
        cats = category_metrics([g for g, _ in categorised], [p for _, p in categorised])
        report.update(
            category_n=cats["n"],
            category_accuracy=cats["accuracy"],
            category_macro_f1=cats["macro_f1"],
            categories=cats["per_category"],
        )
    return report


def cross_validate(
    records: Sequence[Record],
    k: int = 10,
    seed: int = 0,
    *,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Stratified K-fold: a fresh model per fold, trained with :func:`train_classifier`.

    Returns k, seed, n, the mean of each fold metric (precision, recall, f1, accuracy and,
    with categories, category_macro_f1), f1_std (sample standard deviation) and ``folds``.
    """
    strata = [(r.complaint, r.category or "") for r in records]
    folds = stratified_folds(strata, k, seed)
    task = progress.add_task(f"{k}-fold cross-validation", total=k) if progress else None
    fold_reports = []
    for number, test_idx in enumerate(folds, start=1):
        test_set = set(test_idx)
        train_records = [r for i, r in enumerate(records) if i not in test_set]
        classifier = train_classifier(train_records, seed=seed, config=config, progress=progress)
        report = evaluate(classifier, [records[i] for i in test_idx])
        report.pop("categories", None)
        report.update(fold=number, n_train=len(train_records))
        fold_reports.append(report)
        if progress and task is not None:
            progress.update(task, advance=1)
    summary: dict[str, Any] = {"k": k, "seed": seed, "n": len(records)}
    keys = ["precision", "recall", "f1", "accuracy", "category_macro_f1"]
    for key in keys:
        values = [f[key] for f in fold_reports if key in f]
        if values:
            summary[key] = statistics.fmean(values)
            summary[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    summary["folds"] = fold_reports
    return summary
