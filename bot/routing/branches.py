"""What routing needs to know about a branch, and a minimal reader of ``branches.yaml``.

The branch registry belongs to :mod:`bot.geo`; routing depends only on the
:class:`RoutingBranch` protocol, so the registry's own branch type can be passed to
:func:`bot.routing.directory.build_directory` once it exists. Until then
:func:`load_branches` reads the routing fields of ``branches.yaml`` itself and ignores the
fields the locator owns (names, streets, coordinates): those are validated by ``bot.geo``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from bot.config import read_yaml
from bot.routing.hours import TimeZoneName, WeekHours, minute_of_week
from bot.routing.models import Id, validate


class RoutingBranch(Protocol):
    """A physical branch as routing sees it: where its clock is and who answers for it."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def timezone(self) -> str: ...

    @property
    def manager(self) -> str | None:
        """The manager's person id, or None while the post is vacant."""
        ...

    @property
    def backups(self) -> Sequence[str]:
        """Person ids tried, in order, when the manager is absent or off duty."""
        ...

    @property
    def region(self) -> str:
        """Key into ``routing.yaml`` ``regions``."""
        ...

    def is_open(self, at: datetime) -> bool:
        """Whether the branch's doors are open at ``at`` (only explains decisions)."""
        ...


class BranchView(BaseModel):
    """The routing fields of one ``branches.yaml`` entry; other fields are the locator's."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: Id
    name: str = Field(min_length=1)
    timezone: TimeZoneName
    opening_hours: WeekHours = WeekHours()
    manager: Id | None
    backups: tuple[Id, ...] = ()
    region: Id

    def is_open(self, at: datetime) -> bool:
        return minute_of_week(at, self.timezone) in self.opening_hours


class _BranchesFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    branches: tuple[BranchView, ...] = Field(min_length=1)


def parse_branches(data: Any, source: str) -> tuple[BranchView, ...]:
    """Branch views from parsed ``branches.yaml`` content; ``source`` names it in errors."""
    return validate(_BranchesFile, data, source).branches


def load_branches(file: Path) -> tuple[BranchView, ...]:
    """Branch views from ``branches.yaml``; a ConfigError names the file, key and problem."""
    return parse_branches(read_yaml(file), str(file))
