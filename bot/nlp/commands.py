"""click commands for the ``triagebot`` CLI: ``train`` and ``eval``.

Register them on the group with ``cli.add_command(train_command)`` and
``cli.add_command(eval_command)``. Bad input (a missing file, a bad label, a missing column)
exits with code 2 and a one-line message naming the file, line and column.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bot.errors import DataError
from bot.nlp.data import CATEGORY_MAPS, CORPUS_DIR, Record, load_corpus, load_records
from bot.nlp.evaluate import cross_validate, evaluate
from bot.nlp.pipeline import default_model_dir, load_classifier
from bot.nlp.train import train


def _fail(message: str) -> click.UsageError:
    """A usage error: click prints it and exits with code 2."""
    return click.UsageError(message)


@contextmanager
def _progress() -> Iterator[Progress]:
    """Progress on stderr, so stdout stays for results (one JSON object with --json)."""
    with Progress(console=Console(stderr=True), transient=True) as progress:
        yield progress


def _load_training_data(paths: tuple[Path, ...]) -> list[Record]:
    if not paths:
        return load_corpus(CORPUS_DIR)
    records: list[Record] = []
    for path in paths:
        if path.suffix.lower() == ".jsonl":
            records.extend(load_records(path, "text", "complaint", "category", kind_column="kind"))
        else:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle), [])
            category = "category" if "category" in header else None
            records.extend(load_records(path, "text", "label", category))
    return records


@click.command("train")
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Training file (.jsonl with text/complaint/category keys, or .csv with text/label "
    "and optionally category columns); repeatable. Default: the project's corpus.",
)
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=None,
    help="Model directory. Default: $TRIAGE_MODEL_DIR, else models/complaints.",
)
def train_command(data: tuple[Path, ...], seed: int, out: Path | None) -> None:
    """Train the complaint and category model (reproducible for a given seed)."""
    out_dir = out if out is not None else default_model_dir()
    for path in data:
        if not path.is_file():
            raise _fail(f"{path}: no such file")
    try:
        records = _load_training_data(data)
        started = time.monotonic()
        with _progress() as progress:
            path = train(records, seed=seed, out_dir=out_dir, progress=progress)
    except DataError as exc:
        raise _fail(str(exc)) from exc
    elapsed = time.monotonic() - started
    meta = load_classifier(path).nlp.meta.get("triagebot", {})
    click.echo(
        f"trained on {len(records)} posts in {elapsed:.0f}s "
        f"(held-out F1 {meta.get('dev_f1', 0):.3f}, threshold {meta.get('threshold', 0.5):.2f})"
        f" → {path}"
    )


def _category_map(value: str | None) -> dict[str, str | None] | None:
    if value is None:
        return None
    if value in CATEGORY_MAPS:
        return CATEGORY_MAPS[value]
    path = Path(value)
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(
            f"--category-map {value}: neither a built-in map "
            f"({', '.join(CATEGORY_MAPS)}) nor a readable file"
        ) from exc
    except json.JSONDecodeError as exc:
        raise _fail(f"{path}: invalid JSON: {exc.msg}") from exc
    if not isinstance(mapping, dict) or not all(
        isinstance(v, str | None) for v in mapping.values()
    ):
        raise _fail(f"{path}: expected a JSON object of category → id or null")
    return mapping


def _print_table(report: dict[str, Any]) -> None:
    console = Console()
    table = Table(title="complaint detection")
    for column in ("n", "precision", "recall", "f1", "accuracy"):
        table.add_column(column, justify="right")
    table.add_row(
        str(report["n"]),
        *(f"{report[k]:.3f}" for k in ("precision", "recall", "f1", "accuracy")),
    )
    console.print(table)
    if "f1_std" in report:
        console.print(f"{report['k']}-fold: F1 {report['f1']:.3f} ± {report['f1_std']:.3f}")
    if "category_macro_f1" in report:
        console.print(f"category macro-F1 {report['category_macro_f1']:.3f}")
    if "categories" in report:
        cats = Table(title="categories")
        for column in ("category", "support", "predicted", "precision", "recall", "f1"):
            cats.add_column(column, justify="right")
        for name, row in report["categories"].items():
            cats.add_row(
                name,
                str(row["support"]),
                str(row["predicted"]),
                *(f"{row[k]:.3f}" for k in ("precision", "recall", "f1")),
            )
        console.print(cats)


@click.command("eval")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(path_type=Path),
    help="Labelled .csv or .jsonl file.",
)
@click.option("--text-column", default="text", show_default=True)
@click.option(
    "--label-column",
    default="label",
    show_default=True,
    help="Labels 1/0, true/false, yes/no or complaint/other (any case).",
)
@click.option("--category-column", default=None, help="Category of each complaint.")
@click.option(
    "--complaint-value",
    "complaint_values",
    multiple=True,
    help="Label value that means complaint (repeatable); every other value means "
    "not a complaint. E.g. --label-column airline_sentiment --complaint-value negative",
)
@click.option(
    "--category-map",
    default=None,
    help="JSON file mapping category values to ids (null skips the post), or a "
    f"built-in map: {', '.join(CATEGORY_MAPS)}.",
)
@click.option(
    "--cv",
    "cv",
    type=click.IntRange(min=2),
    default=None,
    help="Cross-validate K folds, training on the file, instead of evaluating the model.",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Model directory. Default: $TRIAGE_MODEL_DIR, else models/complaints.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--seed", default=0, show_default=True, help="Random seed (with --cv).")
def eval_command(
    data: Path,
    text_column: str,
    label_column: str,
    category_column: str | None,
    complaint_values: tuple[str, ...],
    category_map: str | None,
    cv: int | None,
    model_dir: Path | None,
    as_json: bool,
    seed: int,
) -> None:
    """Evaluate the model on a labelled file, or cross-validate the recipe on it (--cv)."""
    if not data.is_file():
        raise _fail(f"{data}: no such file")
    mapping = _category_map(category_map)
    try:
        records = load_records(
            data,
            text_column,
            label_column,
            category_column,
            complaint_values=complaint_values or None,
            category_map=mapping,
        )
        if not records:
            raise DataError(f"{data}: no records")
        if cv is not None:
            with _progress() as progress:
                report = cross_validate(records, cv, seed, progress=progress)
        else:
            try:
                classifier = load_classifier(model_dir)
            except FileNotFoundError as exc:
                raise _fail(str(exc)) from exc
            report = evaluate(classifier, records)
    except (DataError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    else:
        _print_table(report)
