"""The routing decision: category + branch + severity + instant → who is paged, how, and then whom.

:func:`route` is a pure function of a loaded :class:`~bot.routing.directory.Directory` and an
instant; it never reads a clock or a file. Its :class:`Assignment` says who owns the complaint,
the escalation policy resolved into concrete steps (people and contact routes, in order) and,
in ``why``, every choice in words a manager can check.

Rules, in the order they apply:

* ``owner: team`` categories go to the team whatever the branch; branch categories without a
  branch go to ``unroutable.team``. Both use ``policy_selection.team_owned``; branch
  complaints use ``policy_selection.by_severity``.
* A team with ``coverage: working_hours`` that is closed at ``at`` starts its escalation when
  it opens (``Assignment.starts_at``): nobody is woken for a team that does not work nights.
* ``owner`` of a branch complaint is its manager when on duty; otherwise (or with no manager)
  ``outside_hours`` decides: ``backup_then_regional`` takes the first backup on duty, else the
  regional manager; ``regional_manager`` goes straight to the regional manager; ``owner`` pages
  the manager anyway. The regional manager is the last resort and is paged on or off duty.
* ``backup`` is the first backup on duty who has not been paged yet; ``next_on_call`` is the
  first person on the rota, from the one on call now onwards, who has not been paged yet.
* Each step is resolved at its due time (``starts_at + after_minutes``), so a step after a
  hand-over reaches the new shift. Nobody is paged twice: a step left with no one new is
  dropped, and ``why`` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal

from bot.errors import UnknownCategoryError
from bot.routing.branches import RoutingBranch
from bot.routing.directory import Directory
from bot.routing.hours import DAY, WEEKDAYS, format_clock, minute_of_week, require_aware, zone
from bot.routing.models import SEVERITIES, ContactRoute, Person, Team
from bot.routing.schedule import current_shift, local_time, next_opening, on_duty, upcoming

OwnerKind = Literal["branch_manager", "team", "unroutable"]


@dataclass(frozen=True, slots=True)
class Contact:
    """One route to try: ``who`` is a person id, or a team id for a team's shared route."""

    who: str
    kind: str
    target: str

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


@dataclass(frozen=True, slots=True)
class Step:
    """One escalation step: at ``due`` (unless acknowledged), page ``people`` via ``routes``.

    ``routes`` lists each person's routes in their order, then shared team routes.
    """

    after_minutes: int
    due: datetime
    notify: tuple[str, ...]
    people: tuple[str, ...]
    routes: tuple[Contact, ...]


@dataclass(frozen=True)
class Assignment:
    """Who answers for a complaint and how it escalates; ``why`` explains each choice."""

    category: str
    severity: str
    at: datetime
    owner_kind: OwnerKind
    owner: str | None  # branch manager's person id (None: vacant), or the owning team's id
    branch_id: str | None
    policy: str
    starts_at: datetime
    steps: tuple[Step, ...]
    why: tuple[str, ...]
    names: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def now(self) -> Step | None:
        """The step paged at ``at`` itself, or None (a closed team: see ``starts_at``)."""
        first = self.steps[0] if self.steps else None
        return first if first is not None and first.due == self.at else None

    @property
    def people(self) -> tuple[str, ...]:
        """Person ids paged now."""
        return self.now.people if self.now else ()

    @property
    def routes(self) -> tuple[Contact, ...]:
        """The contact routes tried now, in order."""
        return self.now.routes if self.now else ()


def route(
    directory: Directory,
    category: str,
    branch_id: str | None,
    severity: str,
    at: datetime,
) -> Assignment:
    """Decide who is paged for a complaint at the instant ``at`` (timezone-aware).

    Raises :class:`~bot.errors.UnknownBranchError` for a branch id not in the directory and
    :class:`~bot.errors.UnknownCategoryError` for a category without a rule, and
    ``ValueError`` for an unknown severity or a naive ``at``.
    """
    require_aware(at)
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r} (one of {', '.join(SEVERITIES)})")
    policy = directory.policy
    rule = policy.categories.get(category)
    if rule is None:
        raise UnknownCategoryError(
            f"no routing rule for category {category!r} "
            f"(routing.yaml categories: {', '.join(policy.categories)})"
        )
    branch = directory.branch(branch_id) if branch_id is not None else None
    why: list[str] = []
    team: Team | None = None
    owner_kind: OwnerKind
    owner: str | None
    if rule.owner == "team":
        assert rule.team is not None  # checked when the directory was built
        team = directory.team(rule.team)
        owner_kind, owner = "team", team.id
        why.append(f"{category} is owned by the team {team.name} ({team.id}), whatever the branch")
        if branch is not None:
            why.append(f"branch {branch.id} is kept for the record; it does not change the owner")
    elif branch is None:
        team = directory.team(policy.unroutable.team)
        owner_kind, owner = "unroutable", team.id
        why.append(
            f"{category} is owned by a branch manager but no branch was found: unroutable, "
            f"so it goes to {team.name} ({team.id})"
        )
    else:
        owner_kind, owner = "branch_manager", branch.manager
        state = "open" if branch.is_open(at) else "closed"
        why.append(
            f"{category} is owned by the manager of branch {branch.name} ({branch.id}); the "
            f"branch is {state} now ({local_time(at, branch.timezone)})"
        )
    if team is not None:
        policy_name = policy.policy_selection.team_owned
        why.append(f"team-owned: escalation policy {policy_name!r} (severity {severity})")
    else:
        policy_name = policy.policy_selection.by_severity.policy(severity)
        why.append(f"severity {severity}: escalation policy {policy_name!r}")

    starts_at = at
    if team is not None and current_shift(team, at) is None:
        opening = next_opening(team, at)
        assert opening is not None  # a team with nobody on call now has a next shift
        starts_at = opening
        why.append(
            f"{team.name} is closed now ({local_time(at, team.timezone)}): nobody is paged "
            f"until it opens at {_when(opening, team.timezone)}"
        )

    resolver = _Resolver(directory, branch, team, why)
    steps: list[Step] = []
    for spec in policy.escalation[policy_name]:
        due = starts_at + timedelta(minutes=spec.after_minutes)
        step = resolver.step(spec.after_minutes, due, spec.notify)
        if step is not None:
            steps.append(step)
    names = {pid: directory.name(pid) for pid in resolver.mentioned}
    return Assignment(
        category=category,
        severity=severity,
        at=at,
        owner_kind=owner_kind,
        owner=owner,
        branch_id=branch.id if branch is not None else None,
        policy=policy_name,
        starts_at=starts_at,
        steps=tuple(steps),
        why=tuple(why),
        names=MappingProxyType(names),
    )


def _when(at: datetime, tz: str) -> str:
    return at.astimezone(zone(tz)).strftime("%a %Y-%m-%d %H:%M %Z")


#: Person ids a target resolved to, each with the reason, in words, it was chosen.
_Chosen = list[tuple[str, str]]


class _Resolver:
    """Resolves escalation targets step by step, remembering who has been paged."""

    def __init__(
        self, d: Directory, branch: RoutingBranch | None, team: Team | None, why: list[str]
    ) -> None:
        self.d = d
        self.branch = branch
        self.team = team
        self.why = why
        self.paged: dict[str, int] = {}  # person id → after_minutes of the step that paged them
        self.used: set[Contact] = set()
        self.mentioned: set[str] = set()

    def who(self, person_id: str) -> str:
        self.mentioned.add(person_id)
        return f"{self.d.name(person_id)} ({person_id})"

    def step(self, after: int, due: datetime, notify: tuple[str, ...]) -> Step | None:
        people: list[str] = []
        routes: list[Contact] = []
        for target in notify:
            label = f"+{after} min {target}"
            chosen, team = self.resolve(target, due, label)
            for pid, reason in chosen:
                if pid in self.paged:
                    self.why.append(
                        f"{label} → {self.who(pid)}: already paged at +{self.paged[pid]} min"
                    )
                    continue
                self.why.append(f"{label} → {self.who(pid)}: {reason}")
                self.paged[pid] = after
                people.append(pid)
                routes += _contacts(pid, self.d.person(pid).routes)
            if team is not None:
                self.mentioned.add(team.id)
                routes += _contacts(team.id, team.routes)
        fresh = [c for c in dict.fromkeys(routes) if c not in self.used]
        self.used.update(fresh)
        if not people and not fresh:
            self.why.append(f"+{after} min: no one new to notify, step left out")
            return None
        return Step(after, due, notify, tuple(people), tuple(fresh))

    def resolve(self, target: str, t: datetime, label: str) -> tuple[_Chosen, Team | None]:
        """Who ``target`` means at ``t``, and the team whose shared routes join them."""
        kind, _, ref = target.partition(":")
        if kind == "team" and ref:
            other = self.d.team(ref)
            return self._on_call(other, t, label), other
        if kind == "person" and ref:
            return [(ref, "named in the policy")], None
        if self.team is not None:
            if target in ("owner", "on_call"):
                return self._on_call(self.team, t, label), self.team
            if target == "next_on_call":
                return self._next_on_call(self.team, t, label), self.team
            if target == "team_lead":
                return [(self.team.lead, f"lead of {self.team.name}")], self.team
        elif self.branch is not None:
            if target == "owner":
                return self._branch_owner(self.branch, t), None
            if target == "backup":
                return self._backup(self.branch, t, label), None
            if target == "regional_manager":
                return [self._regional(self.branch, t)], None
        # The directory checks every policy's targets against where the policy is used.
        raise AssertionError(f"target {target!r} cannot be resolved here")

    def _hours(self, person: Person, t: datetime) -> str:
        minute = minute_of_week(t, person.timezone)
        day = WEEKDAYS[minute // DAY]
        now = format_clock(minute % DAY)
        return f"hours {day} {person.working_hours.on(day)}, now {now} {person.timezone}"

    def _first_backup_on_duty(self, branch: RoutingBranch, t: datetime) -> str | None:
        return next(
            (b for b in branch.backups if b not in self.paged and on_duty(self.d.person(b), t)),
            None,
        )

    def _branch_owner(self, branch: RoutingBranch, t: datetime) -> _Chosen:
        mode = self.d.policy.outside_hours
        manager = branch.manager
        if manager is None:
            reason = f"branch {branch.id} has no manager"
        else:
            person = self.d.person(manager)
            if on_duty(person, t):
                return [(manager, f"the branch manager, on duty ({self._hours(person, t)})")]
            reason = f"the manager {self.who(manager)} is off duty ({self._hours(person, t)})"
            if mode == "owner":
                return [(manager, f"{reason}; outside_hours is owner: paged anyway")]
        if mode == "regional_manager":
            rm, duty = self._regional(branch, t)
            return [(rm, f"{reason}; outside_hours is regional_manager: {duty}")]
        backup = self._first_backup_on_duty(branch, t)
        if backup is not None:
            return [(backup, f"{reason}; the first backup on duty")]
        rm, duty = self._regional(branch, t)
        return [(rm, f"{reason}; {self._no_backup(branch, t)}; so the {duty}")]

    def _no_backup(self, branch: RoutingBranch, t: datetime) -> str:
        waiting = [b for b in branch.backups if b not in self.paged]
        if not branch.backups:
            return "the branch lists no backups"
        if not waiting:
            return "every backup has been paged already"
        off = [f"{self.who(b)} [{self._hours(self.d.person(b), t)}]" for b in waiting]
        return "no backup on duty: " + ", ".join(off)

    def _backup(self, branch: RoutingBranch, t: datetime, label: str) -> _Chosen:
        backup = self._first_backup_on_duty(branch, t)
        if backup is not None:
            return [(backup, "the first backup on duty not yet paged")]
        self.why.append(f"{label}: {self._no_backup(branch, t)}")
        return []

    def _regional(self, branch: RoutingBranch, t: datetime) -> tuple[str, str]:
        rm = self.d.policy.regions[branch.region].regional_manager
        duty = "on duty" if on_duty(self.d.person(rm), t) else "off duty: paged as the last resort"
        return rm, f"regional manager of {branch.region} ({duty})"

    def _on_call(self, team: Team, t: datetime, label: str) -> _Chosen:
        cover = current_shift(team, t)
        if cover is None:
            self.why.append(
                f"{label}: {team.name} is closed at {_when(t, team.timezone)}: nobody is on "
                "call, its shared routes only"
            )
            return []
        return [
            (
                cover.person,
                f"on call for {team.name} (rota[{cover.index}] {cover.shift.window} "
                f"{team.timezone}, until {_when(cover.until, team.timezone)})",
            )
        ]

    def _next_on_call(self, team: Team, t: datetime, label: str) -> _Chosen:
        cover = current_shift(team, t)
        if cover is not None and cover.person not in self.paged:
            return [(cover.person, "on call now (a hand-over since the earlier steps)")]
        for start, shift in upcoming(team, t):
            if shift.person not in self.paged:
                return [
                    (
                        shift.person,
                        f"next on call for {team.name} (shift from {_when(start, team.timezone)})",
                    )
                ]
        self.why.append(f"{label}: no one else on {team.name}'s rota")
        return []


def _contacts(who: str, routes: tuple[ContactRoute, ...]) -> list[Contact]:
    return [Contact(who, r.kind, r.target) for r in routes]


def explain(assignment: Assignment) -> list[str]:
    """The assignment as lines of text: who is paged now and how, the chain, then why."""
    names = assignment.names

    def person(pid: str) -> str:
        return f"{names.get(pid, pid)} ({pid})"

    def routes_of(step: Step) -> str:
        return ", then ".join(
            f"{c}" + ("" if c.who in step.people else f" [{names.get(c.who, c.who)}]")
            for c in step.routes
        )

    lines: list[str] = []
    owner = {
        "branch_manager": f"manager of branch {assignment.branch_id}",
        "team": f"team {assignment.owner}",
        "unroutable": f"unroutable, team {assignment.owner}",
    }[assignment.owner_kind]
    lines.append(
        f"{assignment.category} ({assignment.severity}) → {owner}; policy {assignment.policy!r}"
    )
    now = assignment.now
    if now is None:
        lines.append(f"now: nobody is paged; escalation starts {assignment.starts_at.isoformat()}")
    for step in assignment.steps:
        when = "now" if step is now else f"+{step.after_minutes} min ({step.due.isoformat()})"
        who = ", ".join(person(p) for p in step.people) or "no one personally"
        lines.append(f"{when}: {who} via {routes_of(step)}")
    lines += [f"why: {reason}" for reason in assignment.why]
    return lines
