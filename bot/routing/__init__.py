"""Routing: category + branch → the responsible person, backups, escalation and on-call rotas.

Public API::

    load_directory(config_dir, *, branches=None, categories=None) -> Directory
    build_directory(people_doc, routing_doc, branches, *, categories=None, sources=None)
    route(directory, category, branch_id, severity, at) -> Assignment
    explain(assignment) -> list[str]
    on_duty(person, at) -> bool
    on_call(team, at) -> str | None          # person id; None outside a team's working hours
    next_on_call(team, at) -> str | None
    RoutingBranch                            # what routing needs of a branch (a Protocol)

Modules: ``hours`` (weekly wall-clock time), ``models`` (file shapes), ``schedule`` (duty and
rotas), ``branches`` (the branch protocol and a minimal reader), ``directory`` (loading and
cross-checks), ``route`` (the decision), ``commands`` (the ``route`` click command).
"""

from __future__ import annotations

from bot.routing.branches import BranchView, RoutingBranch, load_branches, parse_branches
from bot.routing.directory import Directory, Sources, build_directory, load_directory
from bot.routing.route import Assignment, Contact, Step, explain, route
from bot.routing.schedule import current_shift, next_on_call, next_opening, on_call, on_duty

__all__ = [
    "Assignment",
    "BranchView",
    "Contact",
    "Directory",
    "RoutingBranch",
    "Sources",
    "Step",
    "build_directory",
    "current_shift",
    "explain",
    "load_branches",
    "load_directory",
    "next_on_call",
    "next_opening",
    "on_call",
    "on_duty",
    "parse_branches",
    "route",
]
