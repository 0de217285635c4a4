"""``triagebot route``: who would be paged for a complaint, how, and why.

For now the complaint is described directly (``--category``, ``--branch``, ``--severity``);
the post text and location options are accepted so the classifier and locator can be put in
front later without changing the command line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.config import default_config_dir
from bot.errors import UnknownCategoryError
from bot.routing.directory import load_directory
from bot.routing.models import SEVERITIES
from bot.routing.route import Assignment, explain, route


@click.command("route")
@click.argument("text", required=False)
@click.option("--lat", type=float, help="Latitude the post was sent from.")
@click.option("--lon", type=float, help="Longitude the post was sent from.")
@click.option("--place", help="The platform's place tag.")
@click.option("--profile-location", help="The author's free-text profile location.")
@click.option("--category", "-c", help="Complaint category (until the classifier is wired in).")
@click.option("--branch", "-b", "branch_id", help="Branch id (until the locator is wired in).")
@click.option(
    "--severity",
    "-s",
    type=click.Choice(SEVERITIES),
    default="medium",
    show_default=True,
)
@click.option("--at", "at_text", help="The instant, ISO 8601 with an offset (default: now).")
@click.pass_context
def route_command(
    ctx: click.Context,
    text: str | None,
    lat: float | None,
    lon: float | None,
    place: str | None,
    profile_location: str | None,
    category: str | None,
    branch_id: str | None,
    severity: str,
    at_text: str | None,
) -> None:
    """Show who would be paged now for a complaint, the escalation chain and why."""
    if (lat is None) != (lon is None):
        raise click.UsageError("--lat and --lon go together")
    if category is None:
        raise click.UsageError("--category is required until the classifier is wired in")
    at = _parse_at(at_text)
    located = any(v is not None for v in (text, lat, place, profile_location))
    if located and branch_id is None:
        click.echo(
            "note: the locator is not wired in yet; pass --branch to name the branch", err=True
        )
    directory = load_directory(_config_dir(ctx))
    try:
        assignment = route(directory, category, branch_id, severity, at)
    except (UnknownCategoryError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--category") from None
    show(assignment, Console(highlight=False))


def _config_dir(ctx: click.Context) -> Path:
    """The ``--config`` of the ``triagebot`` group when there is one, else the default."""
    obj: Any = ctx.find_root().obj
    chosen = obj.get("config_dir") if isinstance(obj, dict) else None
    return Path(chosen) if chosen else default_config_dir()


def _parse_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 instant", param_hint="--at"
        ) from None
    if at.tzinfo is None:
        raise click.BadParameter(
            f"{text!r} has no offset; add one, e.g. {text}+01:00 or {text}Z", param_hint="--at"
        )
    return at


def show(assignment: Assignment, console: Console) -> None:
    """Print an assignment: a summary line, the escalation chain as a table, then why."""
    # Names, targets and reasons come from configuration: print them as text, never as markup.
    lines = explain(assignment)
    console.print(lines[0], markup=False)
    if assignment.now is None:
        console.print(
            f"nobody is paged now; escalation starts {assignment.starts_at.isoformat()}",
            markup=False,
        )
    table = Table(title="escalation", title_justify="left")
    table.add_column("when")
    table.add_column("who", overflow="fold")
    table.add_column("routes, in order", overflow="fold")
    names = assignment.names
    for step in assignment.steps:
        when = "now" if step is assignment.now else f"+{step.after_minutes} min"
        who = "\n".join(f"{names.get(p, p)} ({p})" for p in step.people) or "no one personally"
        routes = "\n".join(
            f"{c}" if c.who in step.people else f"{c} [{names.get(c.who, c.who)}]"
            for c in step.routes
        )
        table.add_row(
            Text(f"{when}\n{step.due.isoformat(timespec='minutes')}"), Text(who), Text(routes)
        )
    console.print(table)
    console.print("why:")
    for reason in assignment.why:
        console.print(f"  - {reason}", soft_wrap=True, markup=False)
