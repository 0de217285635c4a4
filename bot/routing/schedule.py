"""Who is on duty and who is on call at an instant: working hours and weekly rotas.

A person's working hours are read in the person's time zone; a team's rota and opening hours
in the team's, whatever zone its members live in (a Toronto engineer on a London rota hands
over at London's 07:00). Daylight-saving changes follow the local wall clock through
``zoneinfo``; see :mod:`bot.routing.hours` for the nights clocks change.

A rota must not overlap itself. A ``24x7`` team's rota must cover the whole week: a gap is a
configuration error rather than a silent fall-back to the lead, because an unnoticed gap would
page nobody exactly when the team claims to be covered. A ``working_hours`` team's rota must
cover its working hours exactly; outside them :func:`on_call` is ``None`` and routing waits for
:func:`next_opening`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from bot.routing.hours import (
    WEEK,
    Window,
    format_week_time,
    minute_of_week,
    next_wall_time,
    require_aware,
)
from bot.routing.models import Person, Shift, Team


def on_duty(person: Person, at: datetime) -> bool:
    """Whether ``at`` falls in ``person``'s working hours, on their own wall clock."""
    return minute_of_week(at, person.timezone) in person.working_hours


def local_time(at: datetime, tz: str) -> str:
    """``"tue 10:12 Europe/London"``: the wall clock an explanation should quote."""
    return f"{format_week_time(minute_of_week(at, tz))} {tz}"


@dataclass(frozen=True, slots=True)
class Cover:
    """The rota entry in force: ``index`` into ``team.rota``, until when (an instant)."""

    person: str
    index: int
    shift: Shift
    until: datetime


def current_shift(team: Team, at: datetime) -> Cover | None:
    """The shift covering ``at`` on the team's wall clock, or None (team closed)."""
    minute = minute_of_week(at, team.timezone)
    for index, shift in enumerate(team.rota):
        window = shift.window
        if minute in window:
            until = next_wall_time(at, team.timezone, window.end % WEEK)
            return Cover(shift.person, index, shift, until)
    return None


def on_call(team: Team, at: datetime) -> str | None:
    """The id of the person on call for ``team`` at ``at``; None outside a team's hours."""
    cover = current_shift(team, at)
    return cover.person if cover else None


def upcoming(team: Team, at: datetime) -> Iterator[tuple[datetime, Shift]]:
    """The rota's shifts that start after ``at``, soonest first, for one week."""
    starts = [(next_wall_time(at, team.timezone, s.window.start), s) for s in team.rota]
    starts.sort(key=lambda pair: pair[0])
    return iter(starts)


def next_on_call(team: Team, at: datetime) -> str | None:
    """Who takes over from the person on call now: the next shift's person who is someone else.

    When the team is closed, the person of the shift that opens it. None if the rota has no
    one else (a one-person rota).
    """
    now = on_call(team, at)
    return next((s.person for _, s in upcoming(team, at) if s.person != now), None)


def next_opening(team: Team, at: datetime) -> datetime | None:
    """When a closed team's next shift starts; None if someone is on call at ``at``."""
    require_aware(at)
    if current_shift(team, at) is not None:
        return None
    return next(start for start, _ in upcoming(team, at))


def rota_problems(team: Team) -> list[tuple[str, str]]:
    """What is wrong with ``team``'s rota, as (key under the team, problem) pairs.

    Walks the week minute by minute (10,080 of them): slower than interval arithmetic but
    obviously right for wrapping shifts, and it runs once at load time.
    """
    owner: list[int] = [-1] * WEEK
    problems: list[tuple[str, str]] = []
    for index, shift in enumerate(team.rota):
        window = shift.window
        clash = next((m for m in range(window.start, window.end) if owner[m % WEEK] != -1), None)
        if clash is not None:
            other = owner[clash % WEEK]
            first = team.rota[other]
            end = next(
                (m for m in range(clash, window.end) if owner[m % WEEK] != other),
                window.end,
            )
            problems.append(
                (
                    f"rota[{index}]",
                    f"{shift.person} {window} overlaps rota[{other}] ({first.person} "
                    f"{first.window}) from {format_week_time(clash)} to "
                    f"{format_week_time(end)} ({team.timezone})",
                )
            )
            continue
        for m in range(window.start, window.end):
            owner[m % WEEK] = index
    if problems:
        return problems
    hours = team.working_hours
    wanted = [True] * WEEK
    if team.coverage == "working_hours" and hours is not None:
        wanted = [False] * WEEK
        for w in hours.windows():
            for m in range(w.start, w.end):
                wanted[m % WEEK] = True
        for index, shift in enumerate(team.rota):
            outside = next(
                (m for m in range(shift.window.start, shift.window.end) if not wanted[m % WEEK]),
                None,
            )
            if outside is not None:
                problems.append(
                    (
                        f"rota[{index}]",
                        f"{shift.person} {shift.window} runs outside the team's working_hours "
                        f"from {format_week_time(outside)} ({team.timezone})",
                    )
                )
    for gap in _runs(m for m in range(WEEK) if wanted[m] and owner[m] == -1):
        why = (
            "the team's coverage is 24x7"
            if team.coverage == "24x7"
            else "working_hours say the team is open"
        )
        problems.append(
            (
                "rota",
                f"nobody is on call from {format_week_time(gap.start)} to "
                f"{format_week_time(gap.end)} ({team.timezone}) but {why}",
            )
        )
    return problems


def _runs(minutes: Iterator[int]) -> Iterator[Window]:
    """Consecutive minutes as windows, joining a run that ends at Sunday 24:00 to Monday 00:00."""
    runs: list[list[int]] = []
    for m in minutes:
        if runs and runs[-1][1] == m:
            runs[-1][1] = m + 1
        else:
            runs.append([m, m + 1])
    if len(runs) > 1 and runs[0][0] == 0 and runs[-1][1] == WEEK:
        first = runs.pop(0)
        runs[-1][1] = WEEK + first[1]
    return (Window(start, end) for start, end in runs)
