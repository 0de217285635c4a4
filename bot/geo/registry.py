"""The branch registry: every physical branch, validated once, immutable, passed in.

Loaded from ``config/branches.yaml`` (:func:`load_registry`) or imported from a spreadsheet
export (:func:`import_csv`). Both collect *every* problem before giving up and raise one
:class:`BranchDataError` listing them all, each naming the file, the place (YAML branch index
and id, or CSV line and column) and the problem; a file with a problem is never half-loaded.

CSV columns (header row, any order): ``id,name,aliases,address,city,areas,streets,landmarks,
lat,lon,timezone,opening_hours,manager,backups,region,tags``. List columns are ``;``-separated;
``opening_hours`` is ``mon=09:00-17:00;tue=…;sun=closed``; an empty ``manager`` is a vacancy.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.errors import ConfigError, UnknownBranchError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LIST_FIELDS = ("aliases", "areas", "streets", "landmarks", "backups", "tags")
REQUIRED = ("id", "name", "city", "lat", "lon", "timezone")
FIELDS = (
    "id",
    "name",
    "aliases",
    "city",
    "address",
    "areas",
    "streets",
    "landmarks",
    "lat",
    "lon",
    "timezone",
    "opening_hours",
    "manager",
    "backups",
    "region",
    "tags",
)

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_HOURS_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a branch file: where (``line 4, column lat``) and what."""

    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


class BranchDataError(ConfigError):
    """A branch file (YAML or CSV) is invalid; ``problems`` lists every problem found.

    A :class:`~bot.errors.ConfigError`, so the CLI prints it as one clear error; ``key`` and
    ``problem`` are the first problem's, the message lists them all.
    """

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("BranchDataError needs at least one problem")
        self.problems = tuple(problems)
        first = self.problems[0]
        super().__init__(source, first.where, first.problem)
        lines = "\n".join(f"  {p}" for p in self.problems)
        n = len(self.problems)
        self.args = (f"{source}: {n} problem{'s' if n > 1 else ''}:\n{lines}",)


@dataclass(frozen=True, slots=True)
class Branch:
    """One physical branch and what customers call it. ``manager`` None: the post is vacant."""

    id: str
    name: str
    city: str
    lat: float
    lon: float
    timezone: str
    address: str = ""
    aliases: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    streets: tuple[str, ...] = ()
    landmarks: tuple[str, ...] = ()
    opening_hours: tuple[tuple[str, str], ...] = ()  # (day, "09:00-17:00" | "closed"), DAYS order
    manager: str | None = None
    backups: tuple[str, ...] = ()
    region: str = ""
    tags: tuple[str, ...] = ()

    def hours(self, day: str) -> str | None:
        """Opening hours on ``day`` ("mon"…"sun"), or None if the registry does not say."""
        return dict(self.opening_hours).get(day)

    def to_dict(self) -> dict[str, Any]:
        """The YAML schema's mapping, keys in the documented order."""
        return {
            "id": self.id,
            "name": self.name,
            "aliases": list(self.aliases),
            "city": self.city,
            "address": self.address,
            "areas": list(self.areas),
            "streets": list(self.streets),
            "landmarks": list(self.landmarks),
            "lat": self.lat,
            "lon": self.lon,
            "timezone": self.timezone,
            "opening_hours": dict(self.opening_hours),
            "manager": self.manager,
            "backups": list(self.backups),
            "region": self.region,
            "tags": list(self.tags),
        }


@dataclass(frozen=True, slots=True)
class Registry:
    """All branches, in file order, with lookup by id. Ids are unique (checked on creation)."""

    branches: tuple[Branch, ...]
    source: str = ""
    _by_id: Mapping[str, Branch] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Branch] = {}
        for b in self.branches:
            if b.id in by_id:
                raise BranchDataError(
                    self.source or "(registry)", [Problem(b.id, "duplicate branch id")]
                )
            by_id[b.id] = b
        object.__setattr__(self, "_by_id", by_id)

    def __len__(self) -> int:
        return len(self.branches)

    def __iter__(self) -> Iterator[Branch]:
        return iter(self.branches)

    def __contains__(self, branch_id: object) -> bool:
        return branch_id in self._by_id

    def get(self, branch_id: str) -> Branch:
        """The branch with this id; :class:`~bot.errors.UnknownBranchError` if there is none."""
        try:
            return self._by_id[branch_id]
        except KeyError:
            raise UnknownBranchError(
                f"no branch {branch_id!r} in {self.source or 'registry'}"
            ) from None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def cities(self) -> tuple[str, ...]:
        """Distinct cities, in first-seen order."""
        return tuple(dict.fromkeys(b.city for b in self.branches))

    def in_city(self, city: str) -> tuple[Branch, ...]:
        key = city.casefold()
        return tuple(b for b in self.branches if b.city.casefold() == key)

    def merged(self, other: Registry) -> Registry:
        """This registry updated by ``other``: same ids replaced in place, new ids appended."""
        updates = {b.id: b for b in other.branches}
        kept = [updates.pop(b.id, b) for b in self.branches]
        return Registry((*kept, *updates.values()), source=self.source or other.source)

    def to_yaml(self) -> str:
        header = (
            "# Branch registry, written by `triagebot branches import`.\n"
            "# Schema: see bot/geo/registry.py. Edit freely; `triagebot branches list` checks it.\n"
        )
        body = yaml.safe_dump(
            {"branches": [b.to_dict() for b in self.branches]},
            sort_keys=False,
            allow_unicode=True,
            width=100,
        )
        return header + body


# ---- loading ---------------------------------------------------------------------------------


def load_registry(path: Path | str) -> Registry:
    """Read and validate a ``branches.yaml``; every problem is reported at once."""
    file = Path(path)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BranchDataError(source, [Problem("(file)", "not found")]) from None
    except UnicodeDecodeError as exc:
        raise BranchDataError(source, [Problem("(file)", f"not UTF-8 ({exc.reason})")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = f"invalid YAML: {getattr(exc, 'problem', exc)}"
        raise BranchDataError(source, [Problem(where, problem)]) from None
    if not isinstance(data, dict) or not isinstance(data.get("branches"), list):
        raise BranchDataError(source, [Problem("branches", "must be a list of branches")])
    problems: list[Problem] = []
    branches: list[Branch] = []
    first_seen: dict[str, int] = {}
    for i, raw in enumerate(data["branches"]):
        bid = raw.get("id") if isinstance(raw, dict) else None
        label = f"branches[{i}]" + (f" ({bid})" if isinstance(bid, str) else "")
        if not isinstance(raw, dict):
            problems.append(Problem(label, "must be a mapping"))
            continue
        branch = _validated(raw, lambda key, label=label: f"{label}.{key}", problems)
        if branch is None:
            continue
        if branch.id in first_seen:
            where = f"{label}.id"
            problems.append(
                Problem(where, f"duplicate id (first at branches[{first_seen[branch.id]}])")
            )
            continue
        first_seen[branch.id] = i
        branches.append(branch)
    if problems:
        raise BranchDataError(source, problems)
    return Registry(tuple(branches), source=source)


def import_csv(path: Path | str) -> Registry:
    """Import branches from a CSV export: a new registry, or :class:`BranchDataError` listing
    every invalid row by line and column. Nothing is half-imported."""
    file = Path(path)
    source = str(file)
    try:
        handle = file.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise BranchDataError(source, [Problem("(file)", "not found")]) from None
    problems: list[Problem] = []
    branches: list[Branch] = []
    first_line: dict[str, int] = {}
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise BranchDataError(source, [Problem("line 1", f"unreadable: {exc}")]) from None
        if header is None:
            raise BranchDataError(source, [Problem("line 1", "empty file: no header row")])
        columns = [h.strip() for h in header]
        problems.extend(_header_problems(columns))
        if problems:
            raise BranchDataError(source, problems)
        line = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                problems.append(Problem(f"line {line}", f"unreadable: {exc}"))
                break
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if len(row) != len(columns):
                n = len(row)
                problems.append(
                    Problem(f"line {start}", f"has {n} fields, the header has {len(columns)}")
                )
                continue
            fields = _csv_fields(dict(zip(columns, row, strict=True)), start, problems)
            branch = _validated(
                fields, lambda key, start=start: f"line {start}, column {key}", problems
            )
            if branch is None:
                continue
            if branch.id in first_line:
                problems.append(
                    Problem(
                        f"line {start}, column id",
                        f"duplicate id {branch.id!r} (first on line {first_line[branch.id]})",
                    )
                )
                continue
            first_line[branch.id] = start
            branches.append(branch)
    if problems:
        raise BranchDataError(source, problems)
    return Registry(tuple(branches), source=source)


def write_registry(registry: Registry, path: Path | str) -> None:
    """Write ``registry`` as YAML atomically: readers see the old file or the new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(registry.to_yaml())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- validation shared by YAML and CSV ---------------------------------------------------------


def _header_problems(columns: list[str]) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for n, col in enumerate(columns, 1):
        if col in seen:
            problems.append(Problem(f"line 1, column {n}", f"duplicate column {col!r}"))
        elif col not in FIELDS:
            problems.append(Problem(f"line 1, column {n}", f"unknown column {col!r} (misspelt?)"))
        seen.add(col)
    for col in REQUIRED:
        if col not in seen:
            problems.append(Problem("line 1", f"missing column {col!r}"))
    return problems


def _csv_fields(row: dict[str, str], line: int, problems: list[Problem]) -> dict[str, Any]:
    """CSV cells as the YAML schema's types; lat/lon stay strings for _validated to check."""
    out: dict[str, Any] = {}
    for key, cell in row.items():
        value = cell.strip()
        if key in LIST_FIELDS:
            out[key] = [v.strip() for v in value.split(";") if v.strip()]
        elif key == "opening_hours":
            hours: dict[str, str] = {}
            for part in filter(None, (p.strip() for p in value.split(";"))):
                day, sep, spec = part.partition("=")
                if not sep:
                    problems.append(
                        Problem(
                            f"line {line}, column opening_hours",
                            f"{part!r} is not day=HH:MM-HH:MM or day=closed",
                        )
                    )
                    continue
                hours[day.strip().lower()] = spec.strip()
            if value:
                out[key] = hours
        elif key == "manager":
            out[key] = value or None
        elif value or key in REQUIRED:
            out[key] = value
    return out


def _validated(raw: Mapping[str, Any], where: Any, problems: list[Problem]) -> Branch | None:
    """A Branch from schema-typed fields, or None after appending every problem found."""
    before = len(problems)

    def bad(key: str, problem: str) -> None:
        problems.append(Problem(where(key), problem))

    for key in raw:
        if key not in FIELDS:
            bad(str(key), "unknown key (misspelt?)")
    for key in REQUIRED:
        if raw.get(key) in (None, ""):
            bad(key, "required but missing")

    def text(key: str) -> str:
        value = raw.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            bad(key, f"must be text (got {value!r})")
            return ""
        return value.strip()

    def strings(key: str) -> tuple[str, ...]:
        value = raw.get(key, ())
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, list | tuple):
            bad(key, f"must be a list of text (got {value!r})")
            return ()
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                bad(f"{key}[{i}]", f"must be non-empty text (got {item!r})")
            else:
                out.append(item.strip())
        if len(set(out)) != len(out):
            bad(key, "has duplicate entries")
        return tuple(out)

    def coordinate(key: str, limit: float) -> float:
        value = raw.get(key)
        if value in (None, ""):
            return 0.0
        try:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            bad(key, f"not a number (got {value!r})")
            return 0.0
        if not math.isfinite(number) or not -limit <= number <= limit:
            bad(key, f"must be between -{limit:g} and {limit:g} (got {value!r})")
        return number

    bid = text("id")
    if bid and not _ID_RE.match(bid):
        bad("id", f"must be a lowercase slug: letters, digits, '-', '.', '_' (got {bid!r})")
    name, city, address, region = text("name"), text("city"), text("address"), text("region")
    lat, lon = coordinate("lat", 90), coordinate("lon", 180)
    tz = text("timezone")
    if tz:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            bad("timezone", f"unknown time zone {tz!r} (use an IANA name like Europe/London)")
    manager_raw = raw.get("manager")
    manager: str | None = None
    if manager_raw is not None:
        if not isinstance(manager_raw, str) or not manager_raw.strip():
            bad("manager", f"must be a person id or null (got {manager_raw!r})")
        else:
            manager = manager_raw.strip()
    hours = _hours(raw.get("opening_hours"), bad)
    lists = {key: strings(key) for key in LIST_FIELDS}
    if len(problems) > before:
        return None
    return Branch(
        id=bid,
        name=name,
        city=city,
        lat=lat,
        lon=lon,
        timezone=tz,
        address=address,
        opening_hours=hours,
        manager=manager,
        region=region,
        **lists,
    )


def _hours(value: Any, bad: Any) -> tuple[tuple[str, str], ...]:
    if value in (None, {}):
        return ()
    if not isinstance(value, dict):
        bad("opening_hours", f"must map mon..sun to HH:MM-HH:MM or closed (got {value!r})")
        return ()
    out = []
    for day in value:
        if day not in DAYS:
            bad(f"opening_hours.{day}", "unknown day (use mon, tue, wed, thu, fri, sat, sun)")
    missing = [day for day in DAYS if value.get(day) is None]
    if missing:
        bad("opening_hours", f"no hours for {', '.join(missing)} (give hours or closed every day)")
    for day in DAYS:
        spec = value.get(day)
        if spec is None:
            continue
        spec = str(spec).strip().lower()
        m = _HOURS_RE.match(spec)
        if spec != "closed" and (
            not m or m.group(1, 2) >= m.group(3, 4) or m.group(3, 4) > ("24", "00")
        ):
            bad(
                f"opening_hours.{day}",
                f"not HH:MM-HH:MM (opening before closing) or closed: {spec!r}",
            )
            continue
        out.append((day, spec))
    return tuple(out)
