"""``triagebot branches``: import the registry from a CSV export, list it.

A click group; the ``triagebot`` CLI registers it with ``cli.add_command(branches)``. Invalid
input prints every problem (by line and column) and exits with status 2, writing nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from bot.config import default_config_dir
from bot.geo.registry import BranchDataError, Registry, import_csv, load_registry, write_registry


def _config_dir(ctx: click.Context) -> Path:
    obj = ctx.find_root().obj
    given = obj.get("config_dir") if isinstance(obj, dict) else None
    return Path(given or os.environ.get("TRIAGE_CONFIG_DIR") or default_config_dir())


def _fail(exc: BranchDataError) -> None:
    click.echo(f"triagebot: error: {exc}", err=True)
    raise click.exceptions.Exit(2)


@click.group("branches")
def branches() -> None:
    """The branch registry (config/branches.yaml)."""


@branches.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Registry to write (default: branches.yaml in the configuration folder).",
)
@click.option(
    "--merge",
    is_flag=True,
    help="Update the existing registry: same ids replaced, new ids added, others kept.",
)
@click.pass_context
def import_command(ctx: click.Context, file: Path, out: Path | None, merge: bool) -> None:
    """Import branches from a CSV file (lists ;-separated). All or nothing."""
    target = out or _config_dir(ctx) / "branches.yaml"
    try:
        imported = import_csv(file)
        existing = load_registry(target) if merge and target.exists() else Registry(())
    except BranchDataError as exc:
        _fail(exc)
        return
    known = set(existing.ids)
    registry = existing.merged(imported) if merge else imported
    write_registry(registry, target)
    new = sum(1 for b in imported if b.id not in known)
    click.echo(
        f"imported {len(imported)} branches from {file} ({new} new, {len(imported) - new} "
        f"updated); {target} now lists {len(registry)}"
    )


@branches.command("list")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Registry to read (default: branches.yaml in the configuration folder).",
)
@click.option("--city", default=None, help="Only branches in this city.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def list_command(ctx: click.Context, path: Path | None, city: str | None, as_json: bool) -> None:
    """Validate the registry and list its branches."""
    try:
        registry = load_registry(path or _config_dir(ctx) / "branches.yaml")
    except BranchDataError as exc:
        _fail(exc)
        return
    rows = registry.in_city(city) if city else registry.branches
    if as_json:
        for b in rows:
            click.echo(json.dumps(b.to_dict(), ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=registry.source)
    for column in ("id", "name", "city", "manager", "lat, lon", "aka"):
        table.add_column(column, no_wrap=column == "id")
    for b in rows:
        table.add_row(
            b.id,
            b.name,
            b.city,
            b.manager or "[yellow]vacant[/]",
            f"{b.lat:.5f}, {b.lon:.5f}",
            str(len(b.aliases)),
        )
    Console().print(table)
    click.echo(f"{len(rows)} of {len(registry)} branches")
