"""Spike detection: a complaint rate far above its own recent baseline.

For each dimension (branch + category, area + category, category alone) the recent window's
count is compared with the average count per window over the baseline period before it. A
spike needs both a minimum count (three complaints are not a flood) and a multiple of the
baseline, so a busy branch's normal day does not page anyone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpikeRule:
    window_minutes: float = 5
    baseline_hours: float = 24
    min_count: int = 5
    factor: float = 4.0


@dataclass(frozen=True, slots=True)
class Spike:
    dimension: str
    count: int
    baseline: float  # average count per window over the baseline period
    window_minutes: float

    def describe(self, label: str) -> str:
        return (
            f"{self.count} complaints about {label} in {self.window_minutes:g} minutes, "
            f"normal is {self.baseline:.1f}"
        )


def detect(rule: SpikeRule, counts: dict[str, tuple[int, int]]) -> list[Spike]:
    """The dimensions whose recent count is a spike; ``counts`` is RateStore.record's result."""
    windows_in_baseline = max(1.0, rule.baseline_hours * 60 / rule.window_minutes - 1)
    spikes = []
    for dim, (recent, before) in counts.items():
        baseline = before / windows_in_baseline
        if recent >= rule.min_count and recent >= rule.factor * max(baseline, 0.25):
            spikes.append(Spike(dim, recent, baseline, rule.window_minutes))
    return spikes
