"""``triagebot route``: who would be paged for a complaint, how, and why.

Given a post's text (and optionally where it was sent from), the installed classifier and the
branch locator decide the category, severity and branch, as triage would; ``--category``,
``--branch`` and ``--severity`` override them, so ops can check a routing setup directly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.config import default_config_dir, load_settings
from bot.errors import UnknownCategoryError
from bot.models import Author, Place, Post
from bot.routing.directory import load_directory
from bot.routing.models import SEVERITIES
from bot.routing.route import Assignment, explain, route


@click.command("route")
@click.argument("text", required=False)
@click.option("--lat", type=float, help="Latitude the post was sent from.")
@click.option("--lon", type=float, help="Longitude the post was sent from.")
@click.option("--place", help="The platform's place tag.")
@click.option("--profile-location", help="The author's free-text profile location.")
@click.option("--category", "-c", help="Complaint category (default: the classifier's).")
@click.option("--branch", "-b", "branch_id", help="Branch id (default: the locator's).")
@click.option(
    "--severity",
    "-s",
    type=click.Choice(SEVERITIES),
    default=None,
    help="Severity (default: the classifier's, or medium without text).",
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
    severity: str | None,
    at_text: str | None,
) -> None:
    """Show who would be paged now for a complaint, the escalation chain and why."""
    if (lat is None) != (lon is None):
        raise click.UsageError("--lat and --lon go together")
    if text is None and category is None:
        raise click.UsageError("give the post's TEXT, or --category (and --branch)")
    at = _parse_at(at_text)
    console = Console(highlight=False)
    if text is not None:
        post = Post(
            id="0",
            platform="x",
            author=Author("0", "someone", location=profile_location or ""),
            text=text,
            created_at=at,
            coordinates=(lat, lon) if lat is not None and lon is not None else None,
            place=Place(name=place, full_name=place) if place else None,
        )
        category, branch_id, severity = _triage(ctx, post, console, category, branch_id, severity)
        if category is None:
            return
    assert category is not None
    directory = load_directory(_config_dir(ctx))
    try:
        assignment = route(directory, category, branch_id, severity or "medium", at)
    except (UnknownCategoryError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--category") from None
    show(assignment, console)


def _triage(
    ctx: click.Context,
    post: Post,
    console: Console,
    category: str | None,
    branch_id: str | None,
    severity: str | None,
) -> tuple[str | None, str | None, str | None]:
    """Classify and locate ``post`` as triage would; print what was decided and why."""
    from bot.geo.settings import build_locator
    from bot.nlp.pipeline import load_classifier

    settings = load_settings(_config_dir(ctx))
    cls = load_classifier().classify(post.text)
    verdict = "a complaint" if cls.complaint else "not a complaint"
    console.print(
        f"classification: {verdict} (p={cls.probability:.2f}); category {cls.category} "
        f"(p={cls.category_probability:.2f}); severity {cls.severity}"
        + (f" ({'; '.join(cls.severity_reasons)})" if cls.severity_reasons else ""),
        markup=False,
    )
    if not cls.complaint and category is None:
        console.print("nobody would be paged (give --category to route it anyway)")
        return None, None, None
    if branch_id is None:
        locator = build_locator(settings.geo, settings.root)
        loc = locator.locate(post, cls.spans)
        console.print(f"location: {loc.explain()}", markup=False)
        branch_id = loc.branch_id
    return category or cls.category, branch_id, severity or cls.severity


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
