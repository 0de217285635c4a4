"""Labelled posts from CSV or JSONL files, with errors that name the file, line and column.

Labels (``label_column``), case and surrounding space ignored:

* complaint: ``1``, ``true``, ``yes``, ``y``, ``complaint``;
* not a complaint: ``0``, ``false``, ``no``, ``n``, ``other``, ``not_complaint``;
* in JSONL also the JSON values ``true``/``false`` and ``1``/``0``.

A file labelled some other way (e.g. sentiment) is read with ``complaint_values``: the values
that mean "complaint", every other non-empty value meaning "not a complaint". Categories
(``category_column``) are read for complaints only; ``category_map`` renames them onto the
project's ids, a value mapped to ``None`` (e.g. "Can't Tell") leaves the post uncategorised.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import DataError

#: The project's own labelled corpus (JSONL, one post a line).
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"


TRUE_LABELS = frozenset({"1", "true", "yes", "y", "complaint"})
FALSE_LABELS = frozenset({"0", "false", "no", "n", "other", "not_complaint"})

#: ``negativereason`` of the public airline-tweets set onto our ids. "Customer Service Issue"
#: is mostly about reaching the airline (phone holds, no replies, rebooking by phone), so
#: contact_centre; complaints about named staff are "Flight Attendant Complaints". "Bad Flight"
#: (seats, cabin, wifi, food, cleanliness) is the airline's equivalent of a branch's facilities.
#: "Flight Booking Problems" are mostly the website or app failing to book, so online_outage.
AIRLINE_REASON_MAP: dict[str, str | None] = {
    "Late Flight": "disruption",
    "Cancelled Flight": "disruption",
    "Lost Luggage": "delivery_orders",
    "Damaged Luggage": "delivery_orders",
    "Customer Service Issue": "contact_centre",
    "Flight Attendant Complaints": "staff_service",
    "longlines": "queue_wait",
    "Flight Booking Problems": "online_outage",
    "Bad Flight": "facilities_atm",
    "Can't Tell": None,
}

CATEGORY_MAPS: dict[str, dict[str, str | None]] = {"airline-negativereason": AIRLINE_REASON_MAP}


@dataclass(frozen=True, slots=True)
class Record:
    """One labelled post; ``source`` ("file:line") is where it came from, for messages.

    ``kind`` is the corpus's description of the post (complaint, sarcasm, joke...), used to
    weight training examples; files without it leave it empty.
    """

    text: str
    complaint: bool
    category: str | None = None
    source: str = ""
    kind: str = ""


def parse_label(value: Any) -> bool | None:
    """A complaint label as a bool, or None if ``value`` is not one of the accepted spellings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in TRUE_LABELS:
            return True
        if v in FALSE_LABELS:
            return False
    return None


def load_records(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    category_column: str | None = None,
    *,
    kind_column: str | None = None,
    complaint_values: Collection[str] | None = None,
    category_map: Mapping[str, str | None] | None = None,
) -> list[Record]:
    """Read labelled posts from a ``.csv`` or ``.jsonl`` file.

    Raises :class:`DataError` naming the file, line and column for a missing column, an
    invalid label, an unmapped category or a malformed line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path, (text_column, label_column, category_column))
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path)
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv or .jsonl")
    wanted = {v.strip().lower() for v in complaint_values} if complaint_values else None
    records = []
    for line, row in rows:
        where = f"{path}, line {line}"
        text = _field(row, text_column, where)
        if not isinstance(text, str):
            raise DataError(f"{where}, column {text_column!r}: text must be a string")
        complaint = _label(
            _field(row, label_column, where), wanted, f"{where}, column {label_column!r}"
        )
        category = None
        if category_column is not None and complaint:
            category = _category(
                _field(row, category_column, where),
                category_map,
                f"{where}, column {category_column!r}",
            )
        kind = str(row.get(kind_column) or "") if kind_column else ""
        records.append(Record(text, complaint, category, f"{path}:{line}", kind))
    return records


def load_corpus(directory: str | Path) -> list[Record]:
    """Every ``*.jsonl`` file of the project's corpus (``complaint``/``category``/``kind``)."""
    files = sorted(Path(directory).glob("*.jsonl"))
    if not files:
        raise DataError(f"{directory}: no .jsonl files")
    return [
        record
        for file in files
        for record in load_records(file, "text", "complaint", "category", kind_column="kind")
    ]


def _field(row: Mapping[str, Any], column: str, where: str) -> Any:
    if column not in row:
        raise DataError(f"{where}, column {column!r}: missing")
    return row[column]


def _label(value: Any, wanted: set[str] | None, where: str) -> bool:
    if wanted is not None and isinstance(value, str) and value.strip():
        return value.strip().lower() in wanted
    parsed = parse_label(value)
    if parsed is None or wanted is not None:
        expected = (
            f"one of {', '.join(sorted(wanted))} or another non-empty value"
            if wanted is not None
            else "1/0, true/false, yes/no or complaint/other"
        )
        raise DataError(f"{where}: invalid label {value!r}; expected {expected}")
    return parsed


def _category(value: Any, category_map: Mapping[str, str | None] | None, where: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise DataError(f"{where}: category must be a string, got {value!r}")
    value = value.strip()
    if category_map is None:
        return value
    if value not in category_map:
        raise DataError(f"{where}: category {value!r} is not in the category map")
    return category_map[value]


def _csv_rows(path: Path, columns: tuple[str | None, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}, line 1: empty file, no header")
            for column in columns:
                if column is not None and column not in header:
                    raise DataError(
                        f"{path}, line 1, column {column!r}: missing from the header "
                        f"(columns: {', '.join(header)})"
                    )
            start = reader.line_num + 1
            for values in reader:
                if values:
                    if len(values) != len(header):
                        raise DataError(
                            f"{path}, line {start}: {len(values)} fields, header has {len(header)}"
                        )
                    yield start, dict(zip(header, values, strict=True))
                start = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path}, line {reader.line_num + 1}: {exc}") from exc


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    with handle:
        line_no = 0
        try:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}, line {line_no}: invalid JSON: {exc.msg}") from exc
                if not isinstance(row, dict):
                    raise DataError(f"{path}, line {line_no}: expected a JSON object")
                yield line_no, row
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}, line {line_no + 1}: not UTF-8: {exc}") from exc
