"""The Redis store: embedded by default, a configured server checked before use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from bot.channels import Batch, Rejected
from bot.config import Settings
from bot.errors import RedisPolicyError, StoreError
from bot.models import Author, Post
from bot.store import Store, check_server, connect, embedded
from tests.redis_server import RedisProcess


def post(i: int) -> Post:
    return Post(str(i), "x", Author("1", "ann"), f"text {i}", datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def scratch_server(tmp_path: Path) -> Iterator[redis.Redis]:
    """A second, throwaway real Redis whose configuration a test may change."""
    server = RedisProcess(tmp_path / "scratch").start()
    yield redis.Redis.from_url(server.url)
    server.stop()


def test_embedded_redis_keeps_data_in_the_configured_folder(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = make_settings(REDIS_URL="", TRIAGE_REDIS__DATA_DIR=str(tmp_path / "data"))
    client = embedded(s)
    try:
        client.set("k", "v")
        client.save()
        assert (tmp_path / "data" / "triagebot.rdb").exists()
    finally:
        client._cleanup()  # type: ignore[attr-defined]


def test_configured_server_with_eviction_policy_is_refused(
    scratch_server: redis.Redis, make_settings: Callable[..., Settings]
) -> None:
    scratch_server.config_set("maxmemory-policy", "allkeys-lru")
    url = scratch_server.connection_pool.connection_kwargs["path"]
    url = f"unix://{url}"
    with pytest.raises(RedisPolicyError, match="allkeys-lru"):
        connect(make_settings(REDIS_URL=url))


def test_persistence_off_is_warned(
    scratch_server: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    scratch_server.config_set("save", "")
    scratch_server.config_set("appendonly", "no")
    with caplog.at_level(logging.WARNING, logger="bot.store"):
        check_server(scratch_server, "scratch")
    assert "persistence off" in caplog.text


def test_unreachable_server_is_a_clear_error(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(StoreError, match=r"cannot use Redis at redis://\*\*\*@127.0.0.1:1/0"):
        connect(make_settings(REDIS_URL="redis://user:pw@127.0.0.1:1/0"))


def test_append_dedupes_dead_letters_and_checkpoints_atomically(store: Store) -> None:
    bad = Rejected("replay", "invalid JSON", b'{"data": \xff')
    r1 = store.append(Batch([post(1), post(2), bad], ("replay:f", "120")))
    r2 = store.append(Batch([post(2), post(3), post(2)], ("replay:f", "240")))
    assert (r1.added, r1.duplicates, r1.dead) == (2, 0, 1)
    assert (r2.added, r2.duplicates, r2.dead) == (1, 2, 0)
    assert [p.id for _, p in store.stream_posts()] == ["1", "2", "3"]
    assert store.checkpoint("replay:f") == "240"
    [dead] = store.dead_letters()
    assert dead["reason"] == "invalid JSON" and dead["source"] == "replay"
    import base64

    assert base64.b64decode(dead["raw_b64"]) == b'{"data": \xff'  # raw bytes kept exactly


def test_lock_is_exclusive_renewable_and_released_only_by_owner(store: Store) -> None:
    assert store.acquire_lock("x-stream", "a", 5)
    assert not store.acquire_lock("x-stream", "b", 5)
    assert not store.renew_lock("x-stream", "b", 5)
    assert store.renew_lock("x-stream", "a", 5)
    assert not store.release_lock("x-stream", "b")
    assert store.lock_owner("x-stream") == "a"
    assert store.release_lock("x-stream", "a")
    assert store.acquire_lock("x-stream", "b", 5)
