"""The shapes of ``people.yaml`` and ``routing.yaml``: frozen pydantic models, one per section.

These check each value on its own (a time, a zone, a route target); whether ids point at
something that exists is checked once everything is loaded, in :mod:`bot.routing.directory`.
:func:`validate` turns pydantic's errors into :class:`~bot.errors.ConfigError` with key paths
written the way a person finds them in the file: ``teams[2].rota[3].from``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from bot.errors import ConfigError
from bot.routing.hours import WEEK, TimeZoneName, WeekHours, WeekTime, Window

Severity = Literal["low", "medium", "high"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high")

#: Ids of people, teams, regions and policies: no spaces, no ":" (``team:<id>`` is a target).
Id = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]

_SMS = re.compile(r"^\+[1-9]\d{6,14}$")  # E.164
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CHAT = re.compile(r"^[a-z][a-z0-9+.-]*:\S+$")  # "slack:#channel", "slack:@person"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ContactRoute(_Model):
    """One way to reach someone; a person's or team's routes are tried in the order given."""

    kind: Literal["sms", "email", "chat"]
    target: str = Field(min_length=1)

    @model_validator(mode="after")
    def _target_fits_kind(self) -> ContactRoute:
        pattern, expected = {
            "sms": (_SMS, "an international phone number like '+447700900123'"),
            "email": (_EMAIL, "an email address like 'name@example.com'"),
            "chat": (_CHAT, "a chat target like 'slack:#channel' or 'slack:@person'"),
        }[self.kind]
        if not pattern.match(self.target):
            raise ValueError(f"{self.target!r} is not {expected}")
        return self

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


class Person(_Model):
    """Someone a page can reach. ``working_hours`` are in ``timezone``; days left out are off."""

    id: Id
    name: str = Field(min_length=1)
    role: str = ""
    timezone: TimeZoneName
    routes: tuple[ContactRoute, ...] = Field(min_length=1)
    working_hours: WeekHours


class Shift(_Model):
    """One rota entry: ``person`` is on call from ``from`` to ``to`` (team time zone).

    ``to`` at or before ``from`` in the week wraps past Sunday midnight; ``to`` equal to
    ``from`` is a whole week (a one-person rota).
    """

    person: Id
    start: WeekTime = Field(alias="from")
    end: WeekTime = Field(alias="to")

    @property
    def window(self) -> Window:
        length = (self.end - self.start) % WEEK or WEEK
        return Window(self.start % WEEK, self.start % WEEK + length)


class Team(_Model):
    """A central team that owns categories, with a weekly rota in the team's time zone.

    ``coverage: 24x7``: the rota must cover every minute of the week. ``coverage:
    working_hours``: the rota must cover exactly the team's ``working_hours``; outside them no
    one is on call and the team's escalation waits for the next opening.
    """

    id: Id
    name: str = Field(min_length=1)
    timezone: TimeZoneName
    coverage: Literal["24x7", "working_hours"]
    lead: Id
    members: tuple[Id, ...] = ()
    rota: tuple[Shift, ...] = Field(min_length=1)
    working_hours: WeekHours | None = None
    routes: tuple[ContactRoute, ...] = ()


class PeopleFile(_Model):
    """``people.yaml``."""

    people: tuple[Person, ...] = Field(min_length=1)
    teams: tuple[Team, ...] = ()


class CategoryRule(_Model):
    """Who owns a category: the branch's manager, or a team whatever the branch."""

    owner: Literal["branch_manager", "team"]
    team: Id | None = None


class Region(_Model):
    regional_manager: Id
    name: str = ""
    city: str = ""


class Unroutable(_Model):
    """The team that gets branch complaints no branch could be found for."""

    team: Id


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class EscalationStep(_Model):
    """Notify ``notify`` when ``after_minutes`` have passed without an acknowledgement."""

    after_minutes: int = Field(ge=0, le=7 * 24 * 60)
    notify: Annotated[tuple[str, ...], BeforeValidator(_one_or_many)] = Field(min_length=1)


class BySeverity(_Model):
    """The escalation policy for branch complaints of each severity."""

    low: Id = "default"
    medium: Id = "default"
    high: Id = "high"

    def policy(self, severity: Severity) -> str:
        chosen: str = getattr(self, severity)
        return chosen


class PolicySelection(_Model):
    """Which escalation policy applies: team-owned complaints use one, branch ones by severity."""

    team_owned: Id = "team"
    by_severity: BySeverity = BySeverity()


class RoutingPolicy(_Model):
    """``routing.yaml``."""

    categories: dict[Id, CategoryRule] = Field(min_length=1)
    regions: dict[Id, Region] = {}
    unroutable: Unroutable
    escalation: dict[Id, tuple[EscalationStep, ...]] = Field(min_length=1)
    policy_selection: PolicySelection = PolicySelection()
    outside_hours: Literal["backup_then_regional", "regional_manager", "owner"] = (
        "backup_then_regional"
    )


M = TypeVar("M", bound=BaseModel)


def key_path(loc: tuple[int | str, ...]) -> str:
    """``("teams", 2, "rota", 3, "from")`` → ``"teams[2].rota[3].from"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def validate(model: type[M], data: Any, source: str) -> M:
    """``model`` from parsed YAML, or a ConfigError naming ``source``, the key and the problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        err = errors[0]
        problem = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            problem = "unknown key (misspelt?)"
        elif err["type"] == "missing":
            problem = "required but missing"
        elif err["type"] != "value_error" and "input" in err:
            problem = f"{problem} (got {err['input']!r})"
        if len(errors) > 1:
            more = len(errors) - 1
            problem += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(source, key_path(tuple(err["loc"])), problem) from None
