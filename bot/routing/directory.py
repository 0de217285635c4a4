"""The routing directory: people, teams, routing policy and branches, loaded and cross-checked.

:func:`load_directory` reads ``people.yaml``, ``routing.yaml`` and (unless the branch registry
passes its own branches) ``branches.yaml`` from a configuration folder. Each file is validated
on its own (:mod:`bot.routing.models`), then every reference between them is checked here:
person, team, region and policy ids, escalation targets, rotas. The first problem raises
:class:`~bot.errors.ConfigError` naming the file, the key path (``teams[2].rota[3].person``)
and the problem, with a count of any others, so a bad file fails at start, not at 3 a.m.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bot.config import read_yaml
from bot.errors import ConfigError, UnknownBranchError
from bot.routing.branches import RoutingBranch, load_branches
from bot.routing.models import (
    SEVERITIES,
    PeopleFile,
    Person,
    RoutingPolicy,
    Team,
    validate,
)
from bot.routing.schedule import rota_problems

#: Escalation targets only a branch-owned complaint can resolve.
BRANCH_TARGETS = frozenset({"owner", "backup", "regional_manager"})
#: Escalation targets only a team-owned (or unroutable) complaint can resolve.
TEAM_TARGETS = frozenset({"owner", "on_call", "next_on_call", "team_lead"})
_TARGET_HELP = (
    "owner, backup, regional_manager, on_call, next_on_call, team_lead, team:<id> or person:<id>"
)


@dataclass(frozen=True, slots=True)
class Sources:
    """What each file is called in error messages (paths when loaded from disk)."""

    people: str = "people.yaml"
    routing: str = "routing.yaml"
    branches: str = "branches.yaml"


@dataclass(frozen=True)
class Directory:
    """Everything routing decides from, validated and immutable (see :func:`load_directory`)."""

    people: Mapping[str, Person]
    teams: Mapping[str, Team]
    policy: RoutingPolicy
    branches: Mapping[str, RoutingBranch]
    sources: Sources = field(default=Sources(), compare=False)

    def person(self, person_id: str) -> Person:
        return self.people[person_id]

    def team(self, team_id: str) -> Team:
        return self.teams[team_id]

    def branch(self, branch_id: str) -> RoutingBranch:
        try:
            return self.branches[branch_id]
        except KeyError:
            raise UnknownBranchError(f"no branch {branch_id!r} in the branch registry") from None

    def name(self, person_or_team: str) -> str:
        """A display name for a person or team id (the id itself if unknown)."""
        if person_or_team in self.people:
            return self.people[person_or_team].name
        if person_or_team in self.teams:
            return self.teams[person_or_team].name
        return person_or_team


def load_directory(
    config_dir: Path | str,
    *,
    branches: Iterable[RoutingBranch] | None = None,
    categories: Collection[str] | None = None,
) -> Directory:
    """Read and cross-check the routing configuration in ``config_dir``.

    ``branches``: the branch registry's branches; when None, ``branches.yaml`` is read for
    the fields routing needs. ``categories``: the category ids the classifier emits; when
    given, ``routing.yaml`` must have a rule for each and no others.
    """
    cdir = Path(config_dir)
    sources = Sources(
        people=str(cdir / "people.yaml"),
        routing=str(cdir / "routing.yaml"),
        branches=str(cdir / "branches.yaml"),
    )
    people = read_yaml(cdir / "people.yaml")
    routing = read_yaml(cdir / "routing.yaml")
    if branches is None:
        branches = load_branches(cdir / "branches.yaml")
    return build_directory(people, routing, branches, categories=categories, sources=sources)


def build_directory(
    people: Any,
    routing: Any,
    branches: Iterable[RoutingBranch],
    *,
    categories: Collection[str] | None = None,
    sources: Sources | None = None,
) -> Directory:
    """A directory from already parsed YAML content (``people``, ``routing``) and branches."""
    src = sources or Sources()
    people_file = validate(PeopleFile, people, src.people)
    policy = validate(RoutingPolicy, routing, src.routing)
    branch_list = list(branches)
    checker = _Checker(src)
    checker.people(people_file)
    checker.policy(policy, people_file, categories)
    checker.branches(branch_list, people_file, policy)
    checker.raise_first()
    return Directory(
        people=MappingProxyType({p.id: p for p in people_file.people}),
        teams=MappingProxyType({t.id: t for t in people_file.teams}),
        policy=policy,
        branches=MappingProxyType({b.id: b for b in branch_list}),
        sources=src,
    )


class _Checker:
    """Collects cross-reference problems; :meth:`raise_first` reports the first and the count."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.problems: list[ConfigError] = []

    def add(self, source: str, key: str, problem: str) -> None:
        self.problems.append(ConfigError(source, key, problem))

    def raise_first(self) -> None:
        if not self.problems:
            return
        first, more = self.problems[0], len(self.problems) - 1
        problem = first.problem
        if more:
            problem += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(first.source, first.key, problem)

    def people(self, doc: PeopleFile) -> None:
        src = self.sources.people
        person_ids = _unique(self, src, "people", [p.id for p in doc.people])
        _unique(self, src, "teams", [t.id for t in doc.teams])

        def known(key: str, person_id: str) -> bool:
            if person_id in person_ids:
                return True
            self.add(src, key, f"unknown person {person_id!r}{_suggest(person_id, person_ids)}")
            return False

        for t, team in enumerate(doc.teams):
            at = f"teams[{t}]"
            known(f"{at}.lead", team.lead)
            for m, member in enumerate(team.members):
                known(f"{at}.members[{m}]", member)
            for r, shift in enumerate(team.rota):
                key = f"{at}.rota[{r}].person"
                if known(key, shift.person) and team.members and shift.person not in team.members:
                    self.add(src, key, f"{shift.person!r} is on the rota but not in members")
            if team.coverage == "24x7" and team.working_hours is not None:
                self.add(
                    src,
                    f"{at}.working_hours",
                    "a 24x7 team has no working_hours: its rota covers the whole week",
                )
                continue
            if team.coverage == "working_hours" and team.working_hours is None:
                self.add(src, f"{at}.working_hours", "required when coverage is working_hours")
                continue
            for key, problem in rota_problems(team):
                self.add(src, f"{at}.{key}", problem)

    def policy(
        self, policy: RoutingPolicy, doc: PeopleFile, categories: Collection[str] | None
    ) -> None:
        src = self.sources.routing
        person_ids = {p.id for p in doc.people}
        team_ids = {t.id for t in doc.teams}

        def known_team(key: str, team_id: str) -> None:
            if team_id not in team_ids:
                hint = _suggest(team_id, team_ids)
                self.add(src, key, f"unknown team {team_id!r} (teams are in people.yaml){hint}")

        if categories is not None:
            missing = [c for c in categories if c not in policy.categories]
            if missing:
                self.add(src, "categories", f"no rule for {', '.join(missing)}")
            for name in policy.categories:
                if name not in categories:
                    self.add(
                        src,
                        f"categories.{name}",
                        f"not a category the classifier emits ({', '.join(categories)})",
                    )
        for name, rule in policy.categories.items():
            key = f"categories.{name}"
            if rule.owner == "team" and rule.team is None:
                self.add(src, f"{key}.team", "required when owner is team")
            elif rule.owner != "team" and rule.team is not None:
                self.add(
                    src, f"{key}.team", f"only allowed with owner: team (owner is {rule.owner})"
                )
            elif rule.team is not None:
                known_team(f"{key}.team", rule.team)
        for name, region in policy.regions.items():
            if region.regional_manager not in person_ids:
                self.add(
                    src,
                    f"regions.{name}.regional_manager",
                    f"unknown person {region.regional_manager!r}"
                    f"{_suggest(region.regional_manager, person_ids)}",
                )
        known_team("unroutable.team", policy.unroutable.team)
        self._escalation(policy, person_ids, team_ids)

    def _escalation(self, policy: RoutingPolicy, person_ids: set[str], team_ids: set[str]) -> None:
        src = self.sources.routing
        selection = policy.policy_selection
        uses: dict[str, set[str]] = {}
        if selection.team_owned not in policy.escalation:
            self.add(
                src,
                "policy_selection.team_owned",
                f"unknown policy {selection.team_owned!r} (escalation has "
                f"{', '.join(policy.escalation)})",
            )
        uses.setdefault(selection.team_owned, set()).add("team")
        for severity in SEVERITIES:
            chosen = selection.by_severity.policy(severity)
            key = f"policy_selection.by_severity.{severity}"
            if chosen not in policy.escalation:
                self.add(
                    src,
                    key,
                    f"unknown policy {chosen!r} (escalation has {', '.join(policy.escalation)})",
                )
            else:
                uses.setdefault(chosen, set()).add("branch")
        for name, steps in policy.escalation.items():
            at = f"escalation.{name}"
            if not steps:
                self.add(src, at, "needs at least one step")
                continue
            if steps[0].after_minutes != 0:
                self.add(src, f"{at}[0].after_minutes", "the first step must be at 0 minutes")
            for i, (before, step) in enumerate(pairwise(steps), start=1):
                if step.after_minutes <= before.after_minutes:
                    self.add(
                        src,
                        f"{at}[{i}].after_minutes",
                        f"must be later than the step before ({before.after_minutes})",
                    )
            for i, step in enumerate(steps):
                for n, target in enumerate(step.notify):
                    problem = _target_problem(target, uses.get(name, set()), person_ids, team_ids)
                    if problem:
                        self.add(src, f"{at}[{i}].notify[{n}]", problem)

    def branches(
        self, branches: list[RoutingBranch], doc: PeopleFile, policy: RoutingPolicy
    ) -> None:
        src = self.sources.branches
        person_ids = {p.id for p in doc.people}
        _unique(self, src, "branches", [b.id for b in branches])
        for i, branch in enumerate(branches):
            at = f"branches[{i}]"
            if branch.manager is not None and branch.manager not in person_ids:
                self.add(
                    src,
                    f"{at}.manager",
                    f"unknown person {branch.manager!r}{_suggest(branch.manager, person_ids)}",
                )
            seen: set[str] = set()
            for b, backup in enumerate(branch.backups):
                key = f"{at}.backups[{b}]"
                if backup not in person_ids:
                    self.add(src, key, f"unknown person {backup!r}{_suggest(backup, person_ids)}")
                elif backup == branch.manager:
                    self.add(src, key, f"{backup!r} is the branch's own manager")
                elif backup in seen:
                    self.add(src, key, f"{backup!r} is listed twice")
                seen.add(backup)
            if branch.region not in policy.regions:
                self.add(
                    src,
                    f"{at}.region",
                    f"unknown region {branch.region!r} (routing.yaml regions: "
                    f"{', '.join(policy.regions) or 'none'})",
                )


def _target_problem(
    target: str, used_by: set[str], person_ids: set[str], team_ids: set[str]
) -> str | None:
    kind, sep, ref = target.partition(":")
    if sep:
        if kind == "team":
            return None if ref in team_ids else f"unknown team {ref!r}{_suggest(ref, team_ids)}"
        if kind == "person":
            if ref in person_ids:
                return None
            return f"unknown person {ref!r}{_suggest(ref, person_ids)}"
        return f"unknown target {target!r} (one of {_TARGET_HELP})"
    if target not in BRANCH_TARGETS | TEAM_TARGETS:
        return f"unknown target {target!r} (one of {_TARGET_HELP})"
    if "branch" in used_by and target not in BRANCH_TARGETS:
        return f"{target!r} needs an owning team, but this policy is used for branch complaints"
    if "team" in used_by and target not in TEAM_TARGETS:
        return f"{target!r} needs a branch, but this policy is used for team-owned complaints"
    return None


def _unique(checker: _Checker, source: str, section: str, ids: list[str]) -> set[str]:
    first: dict[str, int] = {}
    for i, item in enumerate(ids):
        if item in first:
            checker.add(
                source,
                f"{section}[{i}].id",
                f"duplicate id {item!r} (also {section}[{first[item]}])",
            )
        else:
            first[item] = i
    return set(first)


def _suggest(wrong: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a known id is close to a misspelt one."""
    close = difflib.get_close_matches(wrong, list(known), n=1, cutoff=0.8)
    return f" (did you mean {close[0]!r}?)" if close else ""
