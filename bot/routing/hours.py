"""Weekly wall-clock time: clock times, working hours per weekday and rota shifts.

Everything here is minutes of a local week (Monday 00:00 = 0, Sunday 24:00 = 10080) in some
IANA time zone; :func:`minute_of_week` maps an instant to that zone's wall clock through
``zoneinfo``, so a 09:00 hand-over happens when the local clock reads 09:00, whatever the UTC
offset that day. On the nights clocks change: a hand-over inside the hour skipped by a forward
change happens at the jump; one inside the hour repeated by a backward change happens on the
first pass only (the clock is read as standing still during the repeat, see
:func:`local_wall`), so no shift ever comes back.

Hand-written because no well-kept library models recurring weekly wall-clock windows with a
minute grain and parse errors that name the offending value; ``zoneinfo`` does the hard part.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY = 24 * 60
WEEK = 7 * DAY

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_CLOSED = frozenset({"", "closed", "off", "none"})


class Window(NamedTuple):
    """``[start, end)`` in minutes of the week; ``end`` may pass ``WEEK`` (wraps to Monday)."""

    start: int
    end: int

    def __contains__(self, minute: object) -> bool:
        if not isinstance(minute, int):
            return False
        return (minute - self.start) % WEEK < self.end - self.start

    @property
    def length(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        return f"{format_week_time(self.start)}–{format_week_time(self.end)}"


def parse_clock(text: str, *, allow_end_of_day: bool = False) -> int:
    """``"HH:MM"`` → minutes since midnight; ``"24:00"`` only where an end of day is meant."""
    m = _CLOCK.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a time of day (HH:MM)")
    hours, minutes = int(m.group(1)), int(m.group(2))
    if hours == 24 and minutes == 0 and allow_end_of_day:
        return DAY
    if hours > 23 or minutes > 59:
        top = "24:00" if allow_end_of_day else "23:59"
        raise ValueError(f"{text!r} is not a time of day (00:00–{top})")
    return hours * 60 + minutes


def format_clock(minute_of_day: int) -> str:
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"


def format_week_time(minute: int) -> str:
    """``"mon 09:00"``; the end of the week prints as ``"sun 24:00"``, wrapped ends as Monday."""
    if minute == WEEK:
        return "sun 24:00"
    minute %= WEEK
    return f"{WEEKDAYS[minute // DAY]} {format_clock(minute % DAY)}"


def _not_a_string(value: Any, what: str) -> ValueError:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 21:00 as the base-60 number 1260.
        return ValueError(f"{what} must be a quoted string (YAML read {value!r} as a number)")
    return ValueError(f"{what} must be a string, got {value!r}")


def parse_week_time(value: Any) -> int:
    """``"mon 09:00"`` → minutes of the week (``"sun 24:00"`` is the end of the week)."""
    if not isinstance(value, str):
        raise _not_a_string(value, 'a rota time like "mon 09:00"')
    parts = value.split()
    if len(parts) != 2 or parts[0].lower() not in WEEKDAYS:
        raise ValueError(f'{value!r} is not a weekday and time like "mon 09:00"')
    day = WEEKDAYS.index(parts[0].lower())
    return day * DAY + parse_clock(parts[1], allow_end_of_day=True)


def parse_day_hours(value: Any) -> tuple[tuple[int, int], ...]:
    """One weekday's hours: ``"08:30-17:30"``, several joined by commas, a list, or closed/off.

    Ranges are minutes of that day; an end at or before the start crosses midnight
    (``"22:00-06:00"`` ends at 06:00 the next day). ``"00:00-24:00"`` is the whole day.
    """
    if value is None or value is False:  # YAML 1.1 reads an unquoted ``off`` or ``no`` as false
        return ()
    if isinstance(value, list | tuple):
        items: list[Any] = list(value)
    elif isinstance(value, str):
        if value.strip().lower() in _CLOSED:
            return ()
        items = [p for p in value.split(",") if p.strip()]
    else:
        raise _not_a_string(value, 'working hours like "08:30-17:30" (or closed)')
    ranges: list[tuple[int, int]] = []
    for item in items:
        if not isinstance(item, str):
            raise _not_a_string(item, 'a range like "08:30-17:30"')
        if item.strip().lower() in _CLOSED:
            continue
        start_text, sep, end_text = item.partition("-")
        if not sep:
            raise ValueError(f'{item!r} is not a range like "08:30-17:30"')
        start = parse_clock(start_text)
        end = parse_clock(end_text, allow_end_of_day=True)
        if end == start:
            raise ValueError(f"{item!r} is empty (use 00:00-24:00 for the whole day)")
        ranges.append((start, end if end > start else end + DAY))
    ranges.sort()
    for (a_start, a_end), (b_start, b_end) in pairwise(ranges):
        if b_start < a_end:
            raise ValueError(
                f"{format_clock(a_start)}-{format_clock(a_end % DAY)} overlaps "
                f"{format_clock(b_start)}-{format_clock(b_end % DAY)}"
            )
    return tuple(ranges)


DayHours = Annotated[tuple[tuple[int, int], ...], BeforeValidator(parse_day_hours)]
WeekTime = Annotated[int, BeforeValidator(parse_week_time)]


class WeekHours(BaseModel):
    """Hours per weekday in some time zone; a day left out (or ``closed``) has none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mon: DayHours = ()
    tue: DayHours = ()
    wed: DayHours = ()
    thu: DayHours = ()
    fri: DayHours = ()
    sat: DayHours = ()
    sun: DayHours = ()

    def windows(self) -> tuple[Window, ...]:
        """Every range as a :class:`Window` of the week, in week order."""
        out: list[Window] = []
        for day, name in enumerate(WEEKDAYS):
            for start, end in getattr(self, name):
                out.append(Window(day * DAY + start, day * DAY + end))
        return tuple(out)

    def __contains__(self, minute: object) -> bool:
        return any(minute in w for w in self.windows())

    def on(self, day: str) -> str:
        """One weekday's hours as text, ``"08:30-17:30"`` or ``"none"``."""
        ranges = getattr(self, day)
        text = ",".join(f"{format_clock(s)}-{format_clock(e % DAY)}" for s, e in ranges)
        return text.replace("-00:00", "-24:00") or "none"

    def describe(self) -> str:
        """``"mon 08:30-17:30, tue 08:30-17:30"``: for explanations."""
        parts = [f"{name} {self.on(name)}" for name in WEEKDAYS if getattr(self, name)]
        return ", ".join(parts) or "never"


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name (cached; ``zoneinfo`` caches too, this skips lookups)."""
    return ZoneInfo(name)


def _check_zone(name: str) -> str:
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. Europe/London)") from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]


def require_aware(at: datetime) -> datetime:
    """``at`` itself; naive datetimes are refused: a wall time without a zone is ambiguous."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no time zone; pass an aware datetime")
    return at


def _first_minute(lo: datetime, hi: datetime, pred: Callable[[datetime], bool]) -> datetime:
    """The earliest whole-minute UTC instant in ``(lo, hi]`` where ``pred`` holds.

    ``pred`` must be false at ``lo``, true at ``hi`` and switch once (a clock change).
    """
    low, high = 0, int((hi - lo).total_seconds() // 60)
    while high - low > 1:
        mid = (low + high) // 2
        if pred(lo + timedelta(minutes=mid)):
            high = mid
        else:
            low = mid
    return lo + timedelta(minutes=high)


def local_wall(at: datetime, tz: str) -> datetime:
    """``tz``'s wall clock at ``at``, to the minute, as a naive datetime that never goes back.

    In the hour a backward clock change repeats, the second pass reads as the last minute of
    the first pass: a hand-over inside that hour happens once (on the first pass), and the
    clock moves on when the repeat is over.
    """
    tzinfo = zone(tz)
    x = require_aware(at).astimezone(UTC).replace(second=0, microsecond=0)
    local = x.astimezone(tzinfo)
    if local.fold == 0:
        return local.replace(tzinfo=None)
    first_offset = local.replace(fold=0).utcoffset()
    second_offset = local.utcoffset()
    assert first_offset is not None and second_offset is not None
    repeat_start = _first_minute(
        x - (first_offset - second_offset), x, lambda y: y.astimezone(tzinfo).fold == 1
    )
    return (repeat_start - timedelta(minutes=1)).astimezone(tzinfo).replace(tzinfo=None)


def minute_of_week(at: datetime, tz: str) -> int:
    """Minutes since Monday 00:00 on ``tz``'s wall clock at the instant ``at``."""
    wall = local_wall(at, tz)
    return wall.weekday() * DAY + wall.hour * 60 + wall.minute


def instant_of(wall: datetime, tz: str) -> datetime:
    """The first instant ``tz``'s wall clock reads ``wall`` (naive), aware in ``tz``.

    A wall time a forward clock change skips resolves to the instant of the jump: the first
    instant the clock reads ``wall`` or later.
    """
    tzinfo = zone(tz)
    first = wall.replace(tzinfo=tzinfo, fold=0).astimezone(UTC)
    if first.astimezone(tzinfo).replace(tzinfo=None) == wall:
        return first.astimezone(tzinfo)
    other = wall.replace(tzinfo=tzinfo, fold=1).astimezone(UTC)
    lo, hi = min(first, other), max(first, other)
    jump = _first_minute(lo, hi, lambda y: y.astimezone(tzinfo).replace(tzinfo=None) >= wall)
    return jump.astimezone(tzinfo)


def next_wall_time(at: datetime, tz: str, minute: int) -> datetime:
    """The first instant after ``at`` when ``tz``'s wall clock reaches week-minute ``minute``."""
    wall = local_wall(at, tz)
    now = wall.weekday() * DAY + wall.hour * 60 + wall.minute
    ahead = (minute - now) % WEEK or WEEK
    return instant_of(wall + timedelta(minutes=ahead), tz)
