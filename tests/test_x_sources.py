"""tweepy over real HTTP against the local X API sandbox: stream and mentions into Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from bot.channels.sandbox import SandboxServer
from bot.channels.x import XMentionsSource, XStreamSource
from bot.config import Settings
from bot.errors import InvalidRuleError
from bot.ingest import Listener, Supervised
from bot.store import Store


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(bearer_token="test-token", keepalive_interval=0.2) as sb:
        yield sb


@pytest.fixture
def x_settings(make_settings: Callable[..., Settings], sandbox: SandboxServer) -> Settings:
    return make_settings(
        TRIAGE_X__API_BASE_URL=sandbox.base_url,
        TRIAGE_X__STREAM_TIMEOUT_SECONDS="1",
        TRIAGE_X__MENTIONS_POLL_SECONDS="0.2",
        TRIAGE_INGEST__BATCH_WAIT_MS="20",
    )


class Running:
    """A listener in a thread, stopped at the end of the test."""

    def __init__(self, store: Store, source: Any) -> None:
        self.stop = threading.Event()
        self.sup = Supervised(source, exclusive=True)
        self.listener = Listener(store, [self.sup], stop=self.stop, heartbeat_every=0.5)
        self.thread = threading.Thread(target=self.listener.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


@pytest.fixture
def run() -> Iterator[Callable[[Store, Any], Running]]:
    started: list[Running] = []

    def start(store: Store, source: Any) -> Running:
        r = Running(store, source)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def publish(sb: SandboxServer, n: int, start: int = 0, **kw: Any) -> list[str]:
    return [
        sb.publish(text=f"@NorthbankHelp queue number {i} at Camden", username=f"c{i}", **kw)
        for i in range(start, start + n)
    ]


def test_stream_posts_arrive_once_and_rules_follow_settings(
    sandbox: SandboxServer, x_settings: Settings, redis_client: redis.Redis, run: Any
) -> None:
    sandbox.publish(text="stale rule test")  # nothing matches yet
    store = Store(redis_client, x_settings)
    run(store, XStreamSource(x_settings))
    assert sandbox.wait_for_stream()
    assert {(r["value"], r.get("tag", "")) for r in sandbox.rules()} == {
        (r.value, r.tag) for r in x_settings.x.rules
    }
    ids = publish(sandbox, 30)
    sandbox.publish(text="nothing to do with any bank")  # matches no rule
    wait_for(lambda: store.stream_length() == 30)
    assert [p.id for _, p in store.stream_posts()] == ids
    post = store.stream_posts()[0][1]
    assert post.author.handle == "c0" and post.mentions == ("NorthbankHelp",)


def test_dropped_stream_reconnects_and_backfill_repeats_are_dropped(
    sandbox: SandboxServer,
    make_settings: Callable[..., Settings],
    redis_client: redis.Redis,
    run: Any,
) -> None:
    s = make_settings(
        TRIAGE_X__API_BASE_URL=sandbox.base_url,
        TRIAGE_X__BACKFILL_MINUTES="1",
        TRIAGE_INGEST__BATCH_WAIT_MS="20",
    )
    store = Store(redis_client, s)
    running = run(store, XStreamSource(s))
    assert sandbox.wait_for_stream()
    first = publish(sandbox, 10)
    wait_for(lambda: store.stream_length() == 10)
    assert sandbox.drop_stream()
    second = publish(sandbox, 10, start=10)  # published while reconnecting
    assert sandbox.wait_for_stream(connections=2)
    wait_for(lambda: store.stream_length() == 20)
    time.sleep(0.3)
    ids = [p.id for _, p in store.stream_posts()]
    assert sorted(ids) == sorted(first + second)  # each once
    assert running.sup.stats.duplicates >= 10  # the backfill repeated the first ten


def test_stalled_stream_is_detected_and_reconnected(
    sandbox: SandboxServer, x_settings: Settings, redis_client: redis.Redis, run: Any
) -> None:
    store = Store(redis_client, x_settings)
    run(store, XStreamSource(x_settings))
    assert sandbox.wait_for_stream()
    sandbox.stall_stream(5)  # no data, no keep-alive; the client gives up after 1 s
    assert sandbox.wait_for_stream(connections=2, timeout=10)
    publish(sandbox, 3)
    wait_for(lambda: store.stream_length() == 3)


def test_429_and_503_are_retried_on_x_schedule(
    sandbox: SandboxServer,
    x_settings: Settings,
    redis_client: redis.Redis,
    run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tweepy.streaming

    waits: list[float] = []

    def record(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(0.01)

    monkeypatch.setattr(tweepy.streaming, "sleep", record)
    store = Store(redis_client, x_settings)
    run(store, XStreamSource(x_settings))
    assert sandbox.wait_for_stream()
    sandbox.fail_next("/2/tweets/search/stream", 503, count=2)
    sandbox.drop_stream()
    assert sandbox.wait_for_stream(connections=2, timeout=10)
    http_waits = [w for w in waits if w >= 1]
    assert http_waits[:2] == [5, 10]  # HTTP errors: 5 s, doubling
    sandbox.fail_next("/2/tweets/search/stream", 429, count=1)
    sandbox.drop_stream()
    assert sandbox.wait_for_stream(connections=3, timeout=10)
    assert 60 in waits  # 429: at least a minute
    publish(sandbox, 2)
    wait_for(lambda: store.stream_length() == 2)


def test_bad_stream_lines_go_to_dead_letters_and_the_stream_goes_on(
    sandbox: SandboxServer, x_settings: Settings, redis_client: redis.Redis, run: Any
) -> None:
    store = Store(redis_client, x_settings)
    run(store, XStreamSource(x_settings))
    assert sandbox.wait_for_stream()
    assert sandbox.send_raw_line(b'{"data": {"id": "1", "text": "trunc')
    assert sandbox.send_raw_line(b'{"errors": [{"title": "operational-disconnect"}]}')
    assert sandbox.send_raw_line(b'{"data": {"id": "2", "text": "\xff\xfe", "author_id": "1"}}')
    publish(sandbox, 2)
    wait_for(lambda: store.stream_length() == 2 and store.dead_letter_count() == 3)
    reasons = " | ".join(d["reason"] for d in store.dead_letters())
    assert "truncated JSON" in reasons and "stream error message" in reasons
    assert "not UTF-8" in reasons


def test_an_exception_in_the_handler_does_not_end_ingestion(
    sandbox: SandboxServer,
    x_settings: Settings,
    redis_client: redis.Redis,
    run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tweepy stops a stream whose handler raises; the source's supervisor restarts it."""
    source = XStreamSource(x_settings, restart_wait=0.1)
    real_put = source.queue.put
    calls = {"n": 0}

    def failing_once(item: bytes, *a: Any, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("handler bug")
        real_put(item, *a, **kw)

    monkeypatch.setattr(source.queue, "put", failing_once)
    store = Store(redis_client, x_settings)
    run(store, source)
    assert sandbox.wait_for_stream()
    publish(sandbox, 1)  # this one breaks the handler; tweepy ends the stream
    assert sandbox.wait_for_stream(connections=2, timeout=10)
    later = publish(sandbox, 3, start=1)
    wait_for(lambda: {p.id for _, p in store.stream_posts()} >= set(later))


def test_invalid_rule_stops_start_up_with_a_clear_error(
    sandbox: SandboxServer, make_settings: Callable[..., Settings]
) -> None:
    s = make_settings(TRIAGE_X__API_BASE_URL=sandbox.base_url)
    bad = s.model_copy(
        update={
            "x": s.x.model_copy(
                update={"rules": (s.x.rules[0].model_copy(update={"value": "(northbank OR"}),)}
            )
        }
    )
    with pytest.raises(InvalidRuleError, match=r"\(northbank OR"):
        XStreamSource(bad).sync_rules()


def test_mentions_poll_paginates_and_checkpoints(
    sandbox: SandboxServer,
    x_settings: Settings,
    redis_client: redis.Redis,
    run: Any,
) -> None:
    ids = publish(sandbox, 230)
    store = Store(redis_client, x_settings)
    running = run(store, XMentionsSource(x_settings))
    wait_for(lambda: store.stream_length() == 230)
    assert store.checkpoint(XMentionsSource.checkpoint_name) == max(ids, key=int)
    more = publish(sandbox, 5, start=230)
    wait_for(lambda: store.stream_length() == 235)
    time.sleep(0.5)  # a few more polls
    assert running.sup.stats.duplicates == 0  # since_id: nothing fetched twice
    assert {p.id for _, p in store.stream_posts()} == set(ids + more)


def test_mentions_poll_waits_out_a_429(
    sandbox: SandboxServer,
    x_settings: Settings,
    redis_client: redis.Redis,
    run: Any,
) -> None:
    reset = str(int(time.time()) + 1)
    sandbox.fail_next("/2/users/", 429, count=1, headers={"x-rate-limit-reset": reset})
    publish(sandbox, 3)
    store = Store(redis_client, x_settings)
    run(store, XMentionsSource(x_settings))
    wait_for(lambda: store.stream_length() == 3, timeout=20)
