"""The ``triagebot`` command."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import click

from bot.config import Settings, load_settings
from bot.errors import TriageError
from bot.geo.commands import branches
from bot.nlp.commands import eval_command, train_command
from bot.routing.commands import route_command

log = logging.getLogger("bot")


class _Group(click.Group):
    """Turns TriageError into one clear line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TriageError as exc:
            click.echo(f"triagebot: error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group)
@click.option(
    "--config",
    "config_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Configuration folder (default: TRIAGE_CONFIG_DIR, else the project's config/).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, config_dir: Path | None, verbose: int) -> None:
    """triagebot: turns public complaints on social media into fixes."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = {"config_dir": config_dir}


def settings_of(ctx: click.Context) -> Settings:
    """Settings, loaded once per process on first use."""
    obj = ctx.find_root().obj
    if "settings" not in obj:
        obj["settings"] = load_settings(obj["config_dir"])
    settings: Settings = obj["settings"]
    return settings


@cli.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Load and validate the configuration, then print a summary (no secrets)."""
    s = settings_of(ctx)
    click.echo(f"configuration in {s.config_dir} is valid")
    click.echo(f"  company: {s.company.name} (@{s.company.x_handle} on X)")
    redis_where = "REDIS_URL" if s.redis.url else f"embedded, in {s.path(s.redis.data_dir)}"
    x_state = f"on, {s.x.mode}" if s.x.enabled else "off"
    click.echo(f"  redis: {redis_where}")
    click.echo(f"  x: {x_state}; mastodon: {'on' if s.mastodon.enabled else 'off'}")
    from bot.models import DEFAULT_CATEGORIES
    from bot.routing import load_directory

    directory = load_directory(s.config_dir, categories=DEFAULT_CATEGORIES)
    click.echo(
        f"  routing: {len(directory.people)} people, {len(directory.teams)} teams, "
        f"{len(directory.branches)} branches, {len(directory.policy.categories)} categories"
    )
    present = [k for k, v in s.secrets if v is not None]
    click.echo(f"  secrets present: {', '.join(present) or 'none'}")


@cli.command()
@click.option(
    "--replay",
    "replay_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Replay a recorded X stream file (one JSON payload a line) instead of X.",
)
@click.option("--rate", type=float, default=None, help="Replay at this many posts per second.")
@click.option("--original-pace", is_flag=True, help="Replay at the posts' original pace.")
@click.option(
    "--speedup",
    type=float,
    default=1.0,
    show_default=True,
    help="With --original-pace: play this many times faster.",
)
@click.option("--x/--no-x", "use_x", default=None, help="Listen to X (default: settings).")
@click.option(
    "--mastodon/--no-mastodon",
    "use_mastodon",
    default=None,
    help="Listen to Mastodon (default: settings).",
)
@click.pass_context
def listen(
    ctx: click.Context,
    replay_file: Path | None,
    rate: float | None,
    original_pace: bool,
    speedup: float,
    use_x: bool | None,
    use_mastodon: bool | None,
) -> None:
    """Run the listener: sources → dedupe → the Redis stream, until SIGTERM.

    With --replay and no live source the listener exits when the file is done.
    """
    from bot.ingest import Listener, Supervised, stop_on_signals
    from bot.store import Store, connect

    s = settings_of(ctx)
    sources: list[Supervised] = []
    if replay_file is not None:
        from bot.channels.replay import ReplaySource

        try:
            replay = ReplaySource(
                replay_file,
                batch_size=s.ingest.batch_size,
                rate=rate,
                original_pace=original_pace,
                speedup=speedup,
                max_text_chars=s.ingest.max_text_chars,
            )
        except FileNotFoundError as exc:
            raise click.BadParameter(str(exc), param_hint="--replay") from None
        sources.append(Supervised(replay, finite=True))
    if use_x if use_x is not None else (s.x.enabled and replay_file is None):
        if s.x.mode == "stream":
            from bot.channels.x import XStreamSource

            sources.append(Supervised(XStreamSource(s), exclusive=True))
        else:
            from bot.channels.x import XMentionsSource

            sources.append(Supervised(XMentionsSource(s), exclusive=True))
    if use_mastodon if use_mastodon is not None else (s.mastodon.enabled and replay_file is None):
        sources.append(Supervised(_mastodon_source(s), exclusive=True))
    if not sources:
        raise click.UsageError("nothing to listen to: enable X or Mastodon, or give --replay")
    stop = threading.Event()
    stop_on_signals(stop)
    store = Store(connect(s), s)
    listener = Listener(store, sources, stop=stop)
    listener.run()
    for sup in sources:
        st = sup.stats
        click.echo(
            f"{sup.source.name}: {st.added} new, {st.duplicates} duplicate, {st.dead} dead-lettered"
        )


def _mastodon_source(s: Settings) -> Any:
    from bot.channels.mastodon import MastodonSource

    token = s.secrets.mastodon_access_token
    if token is None:
        raise click.UsageError("Mastodon needs TRIAGE_MASTODON_ACCESS_TOKEN in the environment")
    return MastodonSource(
        api_base_url=s.mastodon.api_base_url,
        access_token=token.get_secret_value(),
        poll_interval=s.mastodon.poll_seconds,
        use_streaming=s.mastodon.streaming,
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option(
    "--speedup",
    type=float,
    default=240.0,
    show_default=True,
    help="How many times faster than life the morning is replayed.",
)
@click.pass_context
def demo(ctx: click.Context, as_json: bool, speedup: float) -> None:
    """Run the bot end to end on the sample bank: embedded Redis, X sandbox, SMTP sink."""
    from bot.demo import run

    s = settings_of(ctx)
    figures = run(s, speedup=speedup, as_json=as_json)
    if as_json:
        click.echo(json.dumps(figures))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("figure", "value", title="summary")
    for key, value in figures.items():
        table.add_row(key.replace("_", " "), str(value))
    Console().print(table)


@cli.command()
@click.option("--until-idle", is_flag=True, help="Exit when the stream has nothing left.")
@click.option("--name", default=None, help="Consumer name (default: host:pid).")
@click.pass_context
def triage(ctx: click.Context, until_idle: bool, name: str | None) -> None:
    """Run a triage consumer: classify, locate, route, group into incidents, queue pages.

    Run as many as needed, on any machines: they share the stream through a consumer group.
    """
    from bot.components import build_consumer
    from bot.ingest import stop_on_signals
    from bot.store import connect

    s = settings_of(ctx)
    consumer = build_consumer(s, connect(s), name=name)
    stop = threading.Event()
    stop_on_signals(stop)
    consumer.run(stop, until_idle=until_idle)
    st = consumer.stats
    click.echo(
        f"triaged {st.entries}: {st.complaints} complaints ({st.unroutable} unroutable), "
        f"{st.incidents_opened} incidents opened, {st.spikes} spikes"
    )


@cli.command()
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.pass_context
def worker(ctx: click.Context, queues: tuple[str, ...], burst: bool) -> None:
    """Run an RQ worker (with its scheduler) for paging, replies and housekeeping jobs."""
    from workers.main import run_worker

    s = settings_of(ctx)
    run_worker(s, queues or s.workers.queues, burst=burst)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8089, show_default=True)
@click.option("--bearer-token", default=None, help="Require this app bearer token.")
@click.pass_context
def sandbox(ctx: click.Context, host: str, port: int, bearer_token: str | None) -> None:
    """Run the local X API v2 sandbox in the foreground (for the demo and trials).

    Point the bot at it with TRIAGE_X__API_BASE_URL=http://HOST:PORT; drive it (publish posts,
    inject faults, read the bot's replies) through http://HOST:PORT/_sandbox/.
    """
    from bot.channels.sandbox import SandboxServer

    s = settings_of(ctx)
    server = SandboxServer(host, port, bot_handle=s.company.x_handle, bearer_token=bearer_token)
    stop = threading.Event()
    from bot.ingest import stop_on_signals

    stop_on_signals(stop)
    with server:
        click.echo(f"X API sandbox on {server.base_url} (control: {server.base_url}/_sandbox/)")
        stop.wait()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Stream, pending entries, dead letters, open incidents by state, the oldest incident
    nobody has acknowledged, queue depths and the listener's heartbeat."""
    import time

    from rq import Queue

    from bot.store import Store, connect
    from bot.store.incidents import IncidentStore

    s = settings_of(ctx)
    store = Store(connect(s), s)
    store.ensure_group()
    group = next(
        (
            g
            for g in store.r.xinfo_groups(store.stream_key)
            if g["name"].decode() == s.ingest.consumer_group
        ),
        None,
    )
    incidents = IncidentStore(store.r, s.redis.key_prefix)
    by_state: dict[str, int] = {}
    oldest_unacked: dict[str, Any] | None = None
    for incident_id in incidents.open_incidents():
        inc = incidents.get(incident_id)
        by_state[inc.state] = by_state.get(inc.state, 0) + 1
        waiting = inc.state in ("open", "paged", "escalated")
        if waiting and (oldest_unacked is None or inc.opened_at < oldest_unacked["opened_at"]):
            oldest_unacked = {
                "id": inc.id,
                "group": inc.group,
                "state": inc.state,
                "opened_at": inc.opened_at,
                "age_minutes": round((time.time() - inc.opened_at) / 60, 1),
            }
    queues = {name: Queue(name, connection=store.r).count for name in s.workers.queues}
    figures = {
        "stream_length": store.stream_length(),
        "pending": int(group["pending"]) if group else 0,
        "dead_letters": store.dead_letter_count(),
        "open_incidents": by_state,
        "oldest_unacknowledged": oldest_unacked,
        "queues": queues,
        "totals": store.totals(),
        "listener": store.last_heartbeat(),
    }
    if as_json:
        click.echo(json.dumps(figures))
        return
    for key, value in figures.items():
        shown = value if value is not None else "none"
        if key == "listener" and value is None:
            shown = "no heartbeat (not running?)"
        click.echo(f"{key}: {shown}")


@cli.command()
@click.option("--limit", type=int, default=20, show_default=True)
@click.pass_context
def deadletters(ctx: click.Context, limit: int) -> None:
    """The newest dead-lettered payloads with the reason each was set aside."""
    from bot.store import Store, connect

    s = settings_of(ctx)
    store = Store(connect(s), s)
    for entry in store.dead_letters(-limit, -1):
        click.echo(f"[{entry['source']}] {entry['reason']}\n    {entry['preview'][:160]!r}")


@cli.command()
@click.option("--posts", type=int, default=50_000, show_default=True, help="Posts to ingest.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def bench(ctx: click.Context, posts: int, as_json: bool) -> None:
    """Measure ingest, locate and classification throughput (Redis figures in a scratch key
    space, removed afterwards)."""
    from bot.bench import bench_ingest
    from bot.store import Store, connect

    s = settings_of(ctx)
    scratch = s.model_copy(
        update={"redis": s.redis.model_copy(update={"key_prefix": "triagebot-bench"})}
    )
    store = Store(connect(scratch), scratch)
    store.drop_all()
    try:
        ingest = bench_ingest(store, posts)
    finally:
        store.drop_all()
    from bot.bench import bench_classify
    from bot.geo.bench import bench_locate

    locate = bench_locate()
    classify = bench_classify()
    figures = {
        "ingest_posts": ingest.posts,
        "ingest_posts_per_s": round(ingest.posts_per_s),
        "ingest_duplicates_dropped": ingest.duplicates,
        "locate_us_per_post": locate["locate_us_per_post"],
        "locate_branches": locate["branches"],
        "locate_build_s": locate["build_s"],
        "tokenizer_posts_per_s": round(classify.tokenizer_posts_per_s),
        "classify_posts_per_s": round(classify.classify_posts_per_s),
        "classify_to_tokenizer_ratio": round(classify.ratio, 3),
    }
    if as_json:
        click.echo(json.dumps(figures))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("figure", "value", "target", title="triagebot bench")
    table.add_row(
        "ingest posts/s (replay → dedupe → stream, one core)",
        f"{ingest.posts_per_s:,.0f}",
        "≥ 20,000",
    )
    table.add_row("posts ingested (5% repeated)", f"{ingest.posts:,}", "")
    table.add_row("repeats dropped", f"{ingest.duplicates:,}", "all")
    table.add_row(
        f"locate µs/post ({locate['branches']:,} branches, one core)",
        f"{locate['locate_us_per_post']}",
        "≤ 50",
    )
    table.add_row("locator build s (10,000 branches)", f"{locate['build_s']}", "")
    table.add_row(
        "spaCy bare tokenizer posts/s (one core)", f"{classify.tokenizer_posts_per_s:,.0f}", ""
    )
    table.add_row(
        "classify posts/s (one core, same posts)", f"{classify.classify_posts_per_s:,.0f}", ""
    )
    table.add_row("classify / tokenizer", f"{classify.ratio:.2f}", "")
    Console().print(table)


cli.add_command(route_command)
cli.add_command(branches)
cli.add_command(train_command)
cli.add_command(eval_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="triagebot")


if __name__ == "__main__":
    main()
