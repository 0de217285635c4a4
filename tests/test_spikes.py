"""Spike detection on real Redis counts."""

from __future__ import annotations

import redis

from bot.spikes import SpikeRule, detect
from bot.store.rates import RateStore


def test_a_burst_over_a_quiet_baseline_is_a_spike_and_a_busy_normal_is_not(
    redis_client: redis.Redis,
) -> None:
    rates = RateStore(redis_client, "t")
    rule = SpikeRule(window_minutes=5, baseline_hours=24, min_count=5, factor=4)
    day = 24 * 3600
    now = 10 * day
    # A busy branch: 3 complaints every hour all day; a quiet category: nothing.
    for h in range(24):
        for k in range(3):
            rates.record(["busy"], f"b{h}-{k}", now - day + h * 3600 + k, 300, day)
    counts = {}
    for i in range(8):  # then 8 app complaints in 4 minutes, and 2 more at the busy branch
        counts = rates.record(["app"], f"a{i}", now + i * 30, 300, day)
    busy = {}
    for i in range(2):
        busy = rates.record(["busy"], f"x{i}", now + i, 300, day)
    spikes = detect(rule, {**counts, **busy})
    assert [s.dimension for s in spikes] == ["app"]
    assert spikes[0].count == 8
    assert spikes[0].describe("the app") == "8 complaints about the app in 5 minutes, normal is 0.0"


def test_the_same_complaint_recorded_twice_counts_once(redis_client: redis.Redis) -> None:
    rates = RateStore(redis_client, "t")
    rates.record(["d"], "u1", 100, 300, 3600)
    assert rates.record(["d"], "u1", 101, 300, 3600) == {"d": (1, 0)}


def test_below_the_minimum_count_is_not_a_spike() -> None:
    rule = SpikeRule(min_count=5, factor=4)
    assert detect(rule, {"d": (4, 0)}) == []
    assert [s.dimension for s in detect(rule, {"d": (5, 0)})] == ["d"]
    assert detect(rule, {"d": (20, 287 * 10)}) == []  # 20 in 5 min is normal here (10/window)
