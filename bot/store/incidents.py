"""Incident state in Redis: grouping complaints, state transitions, timelines.

Every change is one Lua script, so it is atomic and idempotent: the same complaint added twice
joins its incident once; the same transition done twice changes nothing the second time. The
scripts build per-incident key names from the prefix, so they need a single Redis (or Sentinel),
not Redis Cluster.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis

from bot.errors import TriageError
from bot.models import ACTIVE_STATES, SEVERITIES, Complaint, Incident, TimelineEntry

# KEYS: open index (group -> id), complaint index (post uid -> id), id counter, open zset.
# ARGV: prefix, group, uid, complaint json, severity, now, window s, category, branch, team.
# Returns {incident id, 1 if created, 1 if the complaint was added}.
_ADD_COMPLAINT = """
local prefix, group, uid, body = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local sev, now, window = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local rank = {low = 1, medium = 2, high = 3}
local existing = redis.call('HGET', KEYS[2], uid)
if existing then return {existing, 0, 0} end
local id = redis.call('HGET', KEYS[1], group)
if id then
  local inc = prefix .. ':incident:' .. id
  local last = tonumber(redis.call('HGET', inc, 'last_complaint_at') or '0')
  local state = redis.call('HGET', inc, 'state')
  if now - last > window or state == 'resolved' or state == 'replied' or not state then
    id = false
  end
end
local created = 0
if not id then
  id = string.format('%06d', redis.call('INCR', KEYS[3]))
  created = 1
  local inc = prefix .. ':incident:' .. id
  redis.call('HSET', inc, 'id', id, 'group', group, 'category', ARGV[8], 'branch_id', ARGV[9],
    'team_id', ARGV[10], 'state', 'open', 'severity', sev, 'opened_at', now,
    'updated_at', now, 'last_complaint_at', now, 'complaint_count', 0, 'spike', 0,
    'escalation_step', -1, 'fix', '')
  redis.call('HSET', KEYS[1], group, id)
  redis.call('ZADD', KEYS[4], now, id)
  redis.call('RPUSH', inc .. ':timeline', cjson.encode({at = now, kind = 'opened',
    who = 'triagebot', detail = {group = group}}))
end
local inc = prefix .. ':incident:' .. id
redis.call('RPUSH', inc .. ':complaints', body)
redis.call('HSET', KEYS[2], uid, id)
redis.call('HINCRBY', inc, 'complaint_count', 1)
redis.call('HSET', inc, 'last_complaint_at', now, 'updated_at', now)
local cur = redis.call('HGET', inc, 'severity')
if rank[sev] > (rank[cur] or 0) then redis.call('HSET', inc, 'severity', sev) end
redis.call('RPUSH', inc .. ':timeline', cjson.encode({at = now, kind = 'complaint',
  who = 'triagebot', detail = {post = uid, severity = sev}}))
return {id, created, 1}
"""

# KEYS: incident hash, timeline, open index, open zset.
# ARGV: new state, allowed current states (comma separated), who, now, detail json.
# Returns {1, state} when changed, {0, state} when already there, {-1, ''} when no such
# incident, {-2, state} when the current state does not allow it.
_TRANSITION = """
local to, who, now = ARGV[1], ARGV[3], tonumber(ARGV[4])
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1, ''} end
if state == to then return {0, state} end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return {-2, state} end
redis.call('HSET', KEYS[1], 'state', to, 'updated_at', now, to .. '_at', now, to .. '_by', who)
redis.call('RPUSH', KEYS[2], cjson.encode({at = now, kind = to, who = who,
  detail = cjson.decode(ARGV[5])}))
if to == 'resolved' or to == 'replied' then
  local group = redis.call('HGET', KEYS[1], 'group')
  if redis.call('HGET', KEYS[3], group) == redis.call('HGET', KEYS[1], 'id') then
    redis.call('HDEL', KEYS[3], group)
  end
  redis.call('ZREM', KEYS[4], redis.call('HGET', KEYS[1], 'id'))
end
return {1, to}
"""

# Which states each transition may start from.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "paged": ("open",),
    "escalated": ("paged", "escalated"),
    "acknowledged": ("open", "paged", "escalated"),
    "resolved": ACTIVE_STATES,
    "replied": ("resolved",),
}


class TransitionError(TriageError):
    """A state change the incident's current state does not allow."""


class IncidentStore:
    """Incident operations on Redis; key names live here and nowhere else."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r = client
        self.prefix = prefix
        self.open_index = f"{prefix}:incidents:open-by-group"
        self.complaint_index = f"{prefix}:incidents:by-post"
        self.counter = f"{prefix}:incidents:counter"
        self.open_set = f"{prefix}:incidents:open"
        self._add = client.register_script(_ADD_COMPLAINT)
        self._transition = client.register_script(_TRANSITION)

    def key(self, incident_id: str) -> str:
        return f"{self.prefix}:incident:{incident_id}"

    def add_complaint(
        self,
        complaint: Complaint,
        *,
        group: str,
        team_id: str | None,
        window_s: float,
        now: float | None = None,
    ) -> tuple[str, bool, bool]:
        """Join the open incident of ``group`` (or open one); returns (id, created, added)."""
        if complaint.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {complaint.severity!r}")
        result = self._add(
            keys=[self.open_index, self.complaint_index, self.counter, self.open_set],
            args=[
                self.prefix,
                group,
                complaint.post.uid,
                orjson.dumps(complaint.to_dict()),
                complaint.severity,
                now if now is not None else time.time(),
                window_s,
                complaint.category,
                complaint.branch_id or "",
                team_id or "",
            ],
        )
        return _s(result[0]), bool(result[1]), bool(result[2])

    def transition(
        self,
        incident_id: str,
        to: str,
        who: str,
        detail: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> bool:
        """Move to state ``to``; True if changed, False if it was already there."""
        key = self.key(incident_id)
        code, state = self._transition(
            keys=[key, f"{key}:timeline", self.open_index, self.open_set],
            args=[
                to,
                ",".join(ALLOWED_FROM[to]),
                who,
                now if now is not None else time.time(),
                orjson.dumps(detail or {}),
            ],
        )
        if code == -1:
            raise LookupError(f"no incident {incident_id}")
        if code == -2:
            raise TransitionError(f"incident {incident_id} is {_s(state)}: cannot become {to}")
        return bool(code == 1)

    def add_timeline(self, incident_id: str, kind: str, who: str, detail: dict[str, Any]) -> None:
        """A timeline entry that changes no state (an update, a page attempt, a spike)."""
        now = time.time()
        key = self.key(incident_id)
        pipe = self.r.pipeline()
        pipe.rpush(
            f"{key}:timeline", orjson.dumps({"at": now, "kind": kind, "who": who, "detail": detail})
        )
        pipe.hset(key, "updated_at", now)
        pipe.execute()

    def mark_spike(self, incident_id: str, detail: str) -> bool:
        """Mark the incident as a spike (once) and raise it to high severity."""
        key = self.key(incident_id)
        if not self.r.hsetnx(key, "spike_detail", detail):
            return False
        self.r.hset(key, mapping={"spike": 1, "severity": "high"})
        self.add_timeline(incident_id, "spike", "triagebot", {"detail": detail})
        return True

    def get(self, incident_id: str) -> Incident:
        raw = self.r.hgetall(self.key(incident_id))
        if not raw:
            raise LookupError(f"no incident {incident_id}")
        h = {_s(k): _s(v) for k, v in raw.items()}
        return Incident(
            id=h["id"],
            group=h["group"],
            category=h["category"],
            branch_id=h["branch_id"] or None,
            team_id=h["team_id"] or None,
            state=h["state"],
            severity=h["severity"],
            opened_at=float(h["opened_at"]),
            updated_at=float(h["updated_at"]),
            last_complaint_at=float(h["last_complaint_at"]),
            complaint_count=int(h["complaint_count"]),
            spike=h.get("spike") == "1",
            spike_detail=h.get("spike_detail", ""),
            escalation_step=int(h.get("escalation_step", -1)),
            fix=h.get("fix", ""),
        )

    def complaints(self, incident_id: str) -> list[Complaint]:
        rows = self.r.lrange(f"{self.key(incident_id)}:complaints", 0, -1)
        return [Complaint.from_dict(orjson.loads(r)) for r in rows]

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        rows = self.r.lrange(f"{self.key(incident_id)}:timeline", 0, -1)
        out = []
        for r in rows:
            d = orjson.loads(r)
            detail = d.get("detail")
            out.append(
                TimelineEntry(
                    d["at"], d["kind"], d["who"], detail if isinstance(detail, dict) else {}
                )
            )
        return out

    def set_plan(self, incident_id: str, plan: dict[str, Any]) -> bool:
        """Store who to page at each escalation step, once (the first routing decision wins)."""
        return bool(self.r.hsetnx(self.key(incident_id), "plan", orjson.dumps(plan)))

    def plan(self, incident_id: str) -> dict[str, Any] | None:
        raw = self.r.hget(self.key(incident_id), "plan")
        return orjson.loads(raw) if raw else None

    def all_ids(self) -> list[str]:
        """Every incident ever opened, oldest first (ids come from one counter)."""
        last = self.r.get(self.counter)
        return [f"{i:06d}" for i in range(1, int(last or 0) + 1)]

    def open_incidents(self) -> list[str]:
        return [_s(x) for x in self.r.zrange(self.open_set, 0, -1)]

    def incident_of(self, post_uid: str) -> str | None:
        v = self.r.hget(self.complaint_index, post_uid)
        return _s(v) if v is not None else None


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
