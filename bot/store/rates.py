"""Complaint rates per dimension (a branch, an area, a category) for spike detection.

Each dimension keeps a sorted set of complaint arrivals (member = post uid, score = time),
trimmed to the baseline window. One Lua call records an arrival and returns the counts in the
short and the long window, so concurrent triage consumers agree on the figures.
"""

from __future__ import annotations

import redis

# KEYS: one sorted set per dimension. ARGV: uid, now, short window s, long window s.
# Returns, per key, {count in short window, count in long window before the short one}.
_RECORD = """
local uid, now = ARGV[1], tonumber(ARGV[2])
local short, long = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, uid)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - long)
  redis.call('EXPIRE', key, math.ceil(long) + 60)
  local recent = redis.call('ZCOUNT', key, now - short, '+inf')
  local before = redis.call('ZCOUNT', key, now - long, '(' .. (now - short))
  out[i] = {recent, before}
end
return out
"""


class RateStore:
    """Sliding-window complaint counts in Redis."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.prefix = prefix
        self._record = client.register_script(_RECORD)

    def record(
        self, dimensions: list[str], uid: str, now: float, short_s: float, long_s: float
    ) -> dict[str, tuple[int, int]]:
        """Record one complaint; per dimension (recent count, count in the baseline before)."""
        keys = [f"{self.prefix}:rate:{d}" for d in dimensions]
        rows = self._record(keys=keys, args=[uid, now, short_s, long_s])
        return {d: (int(r[0]), int(r[1])) for d, r in zip(dimensions, rows, strict=True)}
