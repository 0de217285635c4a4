"""Paging state in Redis: who must be paged for which incident step, claims, deliveries.

Invariant 3: a manager is paged at least once per incident and escalation step, and never twice
for the same step, even when a worker dies mid-job and RQ runs it again. The records:

*item* ``(incident, step, person)``
    One page that is owed. ``pending`` until a delivery claims it, then ``claimed``, then
    final: ``sent``, ``uncertain``, ``failed`` (given up after every RQ retry) or
    ``cancelled`` (acknowledged first). Registered once (``register``), never reset.
*delivery* (one message to one person, covering one or more items: bundling)
    Created by claiming items atomically (``open_delivery``): an item belongs to at most one
    delivery, ever, and a delivery's items never change. Its id is its first item's
    ``incident:step:person``; idempotency ids sent to providers derive from it and the route,
    so every run of the same delivery sends the same id. A delivery is *leased*: one owner
    (one job run) works on it; a run that finds a live lease held by another waits until it
    ends, one that finds an expired lease takes the delivery over (``take_over``) and resumes
    it with the same items and ids.
*attempt* state per route, written *before* each provider call (``begin_attempt``: "sending")
    and after it (``finish_attempt`` / ``complete``), all checked against the lease owner.

Why not a bare ``SET NX`` per (incident, step, person): one message may carry several pages
(bundling), so several items must be claimed at once, and a claim must outlive a crash yet be
renewable only by its holder; small Lua scripts over these hashes do both atomically, with the
Redis server's clock for leases.

What this guarantees:

* Never two deliveries for one item; never two owners working on one delivery at once, as
  long as each attempt ends within its lease (renewed before every attempt and backoff sleep
  for the route's worst case - socket timeout times the protocol's blocking steps - plus
  ``lease_margin_seconds``; apprise runs with no detached sender threads).
* A job that dies before a provider call: the next run (RQ's retry of the abandoned job, or a
  continuation) takes the delivery over when the lease ends and sends it. At least once.
* A job that dies *during* a provider call, or after it returned and before ``complete``, or a
  call that got no answer within its read timeout: the attempt stays "sending" (or is reported
  uncertain) and its outcome is unknown. If the route's provider drops repeats of the same
  idempotency id (``provider_dedupes``), the page is sent again with the same id: exactly
  once, as far as the provider's dedupe holds. Otherwise it is *not* sent again, on that route
  or any other, and is recorded ``uncertain`` on the timeline: never twice holds, at least once
  may not (the provider may not have it). The escalation schedule is the safety net: an
  unacknowledged incident still pages the next step on time.

What cannot be guaranteed with providers that do not dedupe (Twilio SMS, Slack/Teams webhooks,
SMTP relays - the stable id travels in ``X-Triage-Page-Id``, but no relay drops a repeat for
it): exactly once across a crash in that window. No record written before or after the call
can tell "the provider has it" from "it does not"; we choose never twice. Also: an HTTP 5xx or
an SMTP error reply is taken as "not delivered" and retried, though a provider may have
accepted the message before failing; the uncertain-by-timeout verdict rests on the attempt's
duration (apprise 2.2 reports socket errors only at DEBUG); a worker stalled past its lease
(swap, a stopped VM) can be overtaken, and if it then resumes both may send; an SMS gateway may
itself deliver twice. After ``page_retry_seconds`` is used up by crashes the job sits in RQ's
FailedJobRegistry until requeued (its state resumes safely). Redis is the source of truth:
its persistence (AOF with ``appendfsync always`` for the strongest) bounds what survives a
Redis crash.

Key names (prefix ``p``)::

    p:page:item:<incident>:<step>:<person>   hash  state, delivery, registered_at
    p:page:pending:<person>                  set   "<incident>:<step>" owed, not yet claimed
    p:page:delivery:<incident>:<step>:<person>  hash  items, owner, lease_until, state, routes,
                                                      r<i> (route state), r<i>n (attempts)
    p:page:window:<person>                   string  bundling window (EX window seconds)
    p:page:step:<incident>:<step>            hash  done_at, outcome
    p:page:jobs:<incident>                   set   RQ job ids scheduled for the incident
    p:link:used:<nonce>                      string  a console link's action was done

Like :mod:`bot.store.incidents`, scripts take keys of one incident and person together, so a
single Redis (or Sentinel) is required, not Redis Cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

ITEM_FINAL = ("sent", "uncertain", "failed", "cancelled")

# Millisecond clock of the Redis server, so leases do not depend on worker clocks.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: item, pending set. ARGV: member, now (s). Returns the item's state.
_REGISTER = """
local state = redis.call('HGET', KEYS[1], 'state')
if state then return state end
redis.call('HSET', KEYS[1], 'state', 'pending', 'registered_at', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 'pending'
"""

# KEYS: delivery, pending set, window, then item keys (the lead first).
# ARGV: delivery id, owner, lease ms, window s, person, routes json, person name, then the
# members ("incident:step") of the items in KEYS order.
# Returns {1, bound members json} or {0, lead state}.
_OPEN = (
    _NOW
    + """
local lead = redis.call('HGET', KEYS[4], 'state')
if lead ~= 'pending' then return {0, lead or ''} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 'delivery exists'} end
local bound = {}
for i = 4, #KEYS do
  if redis.call('HGET', KEYS[i], 'state') == 'pending' then
    local member = ARGV[4 + i]
    redis.call('HSET', KEYS[i], 'state', 'claimed', 'delivery', ARGV[1])
    redis.call('SREM', KEYS[2], member)
    bound[#bound + 1] = member
  end
end
local items = cjson.encode(bound)
redis.call('HSET', KEYS[1], 'person', ARGV[5], 'name', ARGV[7], 'items', items,
  'routes', ARGV[6], 'owner', ARGV[2], 'lease_until', now + tonumber(ARGV[3]),
  'state', 'open', 'created_at', now)
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[4])
end
return {1, items}
"""
)

# KEYS: delivery. ARGV: owner, lease ms.
# Returns {1, 0} taken (or still ours), {0, ms left} leased by another, {2, state} final,
# {-1, 0} no such delivery.
_TAKE_OVER = (
    _NOW
    + """
local d = redis.call('HMGET', KEYS[1], 'owner', 'lease_until', 'state')
if not d[3] then return {-1, 0} end
if d[3] == 'sent' or d[3] == 'uncertain' or d[3] == 'failed' then return {2, d[3]} end
if d[1] ~= ARGV[1] and tonumber(d[2]) > now then return {0, tonumber(d[2]) - now} end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease_until', now + tonumber(ARGV[2]))
if d[3] == 'retry' then
  -- the previous run exhausted every route: this run starts the routes again
  local fields = redis.call('HKEYS', KEYS[1])
  for _, f in ipairs(fields) do
    if string.match(f, '^r%d+n?$') then redis.call('HDEL', KEYS[1], f) end
  end
  redis.call('HSET', KEYS[1], 'state', 'open')
end
return {1, 0}
"""
)

# KEYS: delivery. ARGV: owner, route index, attempt, lease ms. Returns 1, or 0 if not owner.
_BEGIN = (
    _NOW
    + """
local d = redis.call('HMGET', KEYS[1], 'owner', 'state')
if d[1] ~= ARGV[1] or d[2] ~= 'open' then return 0 end
redis.call('HSET', KEYS[1], 'r' .. ARGV[2], 'sending', 'r' .. ARGV[2] .. 'n', ARGV[3],
  'lease_until', now + tonumber(ARGV[4]))
return 1
"""
)

# KEYS: delivery. ARGV: owner, route index, state, lease ms. Returns 1, or 0 if not owner.
_FINISH_ATTEMPT = (
    _NOW
    + """
local d = redis.call('HMGET', KEYS[1], 'owner', 'state')
if d[1] ~= ARGV[1] or d[2] ~= 'open' then return 0 end
redis.call('HSET', KEYS[1], 'r' .. ARGV[2], ARGV[3], 'lease_until', now + tonumber(ARGV[4]))
return 1
"""
)

# KEYS: delivery, then its item keys. ARGV: owner, state (sent|uncertain|failed|retry),
# route index (-1: none), retention s. Returns 1, or 0 if not owner.
_COMPLETE = (
    _NOW
    + """
local d = redis.call('HMGET', KEYS[1], 'owner', 'state')
if d[1] ~= ARGV[1] or d[2] ~= 'open' then return 0 end
local state, ttl = ARGV[2], tonumber(ARGV[4])
-- the lease ends with the run: a retry may take the delivery over at once
redis.call('HSET', KEYS[1], 'state', state, 'done_at', now, 'lease_until', now)
if tonumber(ARGV[3]) >= 0 and state == 'sent' then
  redis.call('HSET', KEYS[1], 'r' .. ARGV[3], 'sent')
end
if state ~= 'retry' then
  for i = 2, #KEYS do
    redis.call('HSET', KEYS[i], 'state', state, 'done_at', now)
    redis.call('EXPIRE', KEYS[i], ttl)
  end
  redis.call('EXPIRE', KEYS[1], ttl)
end
return 1
"""
)

# KEYS: item, pending set. ARGV: member, retention s. Cancels a page not yet claimed.
_CANCEL_ITEM = """
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'cancelled')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""

# KEYS: incident hash. ARGV: step. Raises escalation_step to step (never lowers it).
_RAISE_STEP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
local cur = tonumber(redis.call('HGET', KEYS[1], 'escalation_step') or '-1')
if tonumber(ARGV[1]) > cur then
  redis.call('HSET', KEYS[1], 'escalation_step', ARGV[1])
  return tonumber(ARGV[1])
end
return cur
"""


def link_nonce_key(prefix: str, nonce: str) -> str:
    """The key marking a console link's nonce as used."""
    return f"{prefix}:link:used:{nonce}"


def member(incident_id: str, step: int) -> str:
    return f"{incident_id}:{step}"


def parse_member(m: str) -> tuple[str, int]:
    incident_id, _, step = m.rpartition(":")
    return incident_id, int(step)


@dataclass(frozen=True, slots=True)
class Item:
    """One page owed: its state and the delivery that claimed it (if any)."""

    incident_id: str
    step: int
    person_id: str
    state: str  # "" (unknown), pending, claimed, sent, uncertain, failed, cancelled
    delivery: str | None

    @property
    def final(self) -> bool:
        return self.state in ITEM_FINAL


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one person for one or more items."""

    id: str
    person_id: str
    person_name: str
    members: tuple[str, ...]  # "incident:step", the lead first
    routes: tuple[tuple[str, str], ...]  # (kind, target) in order
    state: str  # open, retry, sent, uncertain, failed
    owner: str
    lease_until_ms: int
    route_states: dict[int, tuple[str, int]] = field(default_factory=dict)

    @property
    def lead(self) -> tuple[str, int]:
        return parse_member(self.members[0])


@dataclass(frozen=True, slots=True)
class Claim:
    """What ``take_over`` found: ``status`` taken, busy (``wait_ms``), final, or missing."""

    status: str  # "taken" | "busy" | "final" | "missing"
    wait_ms: int = 0
    state: str = ""


class PageStore:
    """Paging records on Redis; key names live here and nowhere else."""

    def __init__(self, client: redis.Redis, prefix: str, retention_s: int = 30 * 86400) -> None:
        self.r = client
        self.prefix = prefix
        self.retention_s = retention_s
        self._register = client.register_script(_REGISTER)
        self._open = client.register_script(_OPEN)
        self._take_over = client.register_script(_TAKE_OVER)
        self._begin = client.register_script(_BEGIN)
        self._finish_attempt = client.register_script(_FINISH_ATTEMPT)
        self._complete = client.register_script(_COMPLETE)
        self._cancel_item = client.register_script(_CANCEL_ITEM)
        self._raise_step = client.register_script(_RAISE_STEP)

    # -- keys --------------------------------------------------------------------------------
    def item_key(self, incident_id: str, step: int, person_id: str) -> str:
        return f"{self.prefix}:page:item:{incident_id}:{step}:{person_id}"

    def pending_key(self, person_id: str) -> str:
        return f"{self.prefix}:page:pending:{person_id}"

    def delivery_key(self, delivery_id: str) -> str:
        return f"{self.prefix}:page:delivery:{delivery_id}"

    def window_key(self, person_id: str) -> str:
        return f"{self.prefix}:page:window:{person_id}"

    def step_key(self, incident_id: str, step: int) -> str:
        return f"{self.prefix}:page:step:{incident_id}:{step}"

    def jobs_key(self, incident_id: str) -> str:
        return f"{self.prefix}:page:jobs:{incident_id}"

    @staticmethod
    def delivery_id(incident_id: str, step: int, person_id: str) -> str:
        return f"{incident_id}:{step}:{person_id}"

    # -- items -------------------------------------------------------------------------------
    def register(self, incident_id: str, step: int, person_id: str) -> str:
        """Record that ``person_id`` is owed a page for this step (once); its state."""
        state = self._register(
            keys=[self.item_key(incident_id, step, person_id), self.pending_key(person_id)],
            args=[member(incident_id, step), time.time()],
        )
        return _s(state)

    def item(self, incident_id: str, step: int, person_id: str) -> Item:
        state, delivery = self.r.hmget(
            self.item_key(incident_id, step, person_id), ["state", "delivery"]
        )
        return Item(
            incident_id,
            step,
            person_id,
            _s(state) if state is not None else "",
            _s(delivery) if delivery else None,
        )

    def pending(self, person_id: str) -> list[tuple[str, int]]:
        """Pages owed to ``person_id`` and not yet claimed, oldest incident first."""
        members = sorted(_s(m) for m in self.r.smembers(self.pending_key(person_id)))
        return [parse_member(m) for m in members]

    def cancel_item(self, incident_id: str, step: int, person_id: str) -> bool:
        """Cancel a page nobody has claimed yet (the incident was acknowledged)."""
        return bool(
            self._cancel_item(
                keys=[self.item_key(incident_id, step, person_id), self.pending_key(person_id)],
                args=[member(incident_id, step), self.retention_s],
            )
        )

    # -- deliveries --------------------------------------------------------------------------
    def open_delivery(
        self,
        lead: tuple[str, int],
        person_id: str,
        person_name: str,
        routes: list[tuple[str, str]],
        others: list[tuple[str, int]],
        *,
        owner: str,
        lease_s: float,
        window_s: int,
    ) -> tuple[str, list[tuple[str, int]]] | None:
        """Claim the lead item and whichever ``others`` are still pending, as one delivery.

        Returns (delivery id, claimed items, lead first), or None when the lead is no longer
        pending (another run claimed it first). Starts the person's bundling window.
        """
        items = [lead, *[o for o in others if o != lead]]
        did = self.delivery_id(lead[0], lead[1], person_id)
        keys = [self.delivery_key(did), self.pending_key(person_id), self.window_key(person_id)]
        keys += [self.item_key(i, s, person_id) for i, s in items]
        args: list[Any] = [
            did,
            owner,
            int(lease_s * 1000),
            window_s,
            person_id,
            orjson.dumps(routes),
            person_name,
        ]
        args += [member(i, s) for i, s in items]
        ok, payload = self._open(keys=keys, args=args)
        if not ok:
            return None
        bound = [parse_member(m) for m in orjson.loads(payload)]
        return did, bound

    def delivery(self, delivery_id: str) -> Delivery | None:
        raw = self.r.hgetall(self.delivery_key(delivery_id))
        if not raw:
            return None
        h = {_s(k): _s(v) for k, v in raw.items()}
        route_states: dict[int, tuple[str, int]] = {}
        for k, v in h.items():
            if k.startswith("r") and k[1:].isdigit():
                route_states[int(k[1:])] = (v, int(h.get(f"{k}n", "0") or 0))
        return Delivery(
            id=delivery_id,
            person_id=h["person"],
            person_name=h.get("name", ""),
            members=tuple(orjson.loads(h["items"])),
            routes=tuple((k, t) for k, t in orjson.loads(h["routes"])),
            state=h["state"],
            owner=h.get("owner", ""),
            lease_until_ms=int(float(h.get("lease_until", "0"))),
            route_states=route_states,
        )

    def take_over(self, delivery_id: str, *, owner: str, lease_s: float) -> Claim:
        """Become the delivery's owner unless another owner's lease is still running."""
        code, value = self._take_over(
            keys=[self.delivery_key(delivery_id)], args=[owner, int(lease_s * 1000)]
        )
        if code == 1:
            return Claim("taken")
        if code == 0:
            return Claim("busy", wait_ms=int(value))
        if code == 2:
            return Claim("final", state=_s(value))
        return Claim("missing")

    def begin_attempt(
        self, delivery_id: str, *, owner: str, index: int, attempt: int, lease_s: float
    ) -> bool:
        """Mark route ``index`` as being sent (before the call); False if not the owner."""
        return bool(
            self._begin(
                keys=[self.delivery_key(delivery_id)],
                args=[owner, index, attempt, int(lease_s * 1000)],
            )
        )

    def finish_attempt(
        self, delivery_id: str, *, owner: str, index: int, state: str, lease_s: float
    ) -> bool:
        """Record a route's attempt as failed/exhausted/unavailable; False if not the owner."""
        return bool(
            self._finish_attempt(
                keys=[self.delivery_key(delivery_id)],
                args=[owner, index, state, int(lease_s * 1000)],
            )
        )

    def renew(self, delivery_id: str, *, owner: str, lease_s: float) -> bool:
        """Extend the lease (before a backoff sleep); False if not the owner."""
        claim = self.take_over(delivery_id, owner=owner, lease_s=lease_s)
        return claim.status == "taken"

    def complete(
        self,
        delivery: Delivery,
        *,
        owner: str,
        state: str,
        index: int = -1,
    ) -> bool:
        """Finish the delivery: ``sent``/``uncertain``/``failed`` settle its items for good;
        ``retry`` keeps them claimed for the next run. False if not the owner."""
        keys = [self.delivery_key(delivery.id)]
        keys += [self.item_key(*parse_member(m), delivery.person_id) for m in delivery.members]
        return bool(self._complete(keys=keys, args=[owner, state, index, self.retention_s]))

    # -- bundling window ---------------------------------------------------------------------
    def window_left_ms(self, person_id: str) -> int:
        """Milliseconds until ``person_id`` may get another message (0: now)."""
        return max(0, int(self.r.pttl(self.window_key(person_id))))

    # -- steps -------------------------------------------------------------------------------
    def step_done(self, incident_id: str, step: int) -> bool:
        return bool(self.r.hexists(self.step_key(incident_id, step), "done_at"))

    def step_done_at(self, incident_id: str, step: int) -> float | None:
        v = self.r.hget(self.step_key(incident_id, step), "done_at")
        return float(v) if v is not None else None

    def finish_step(self, incident_id: str, step: int, outcome: str) -> bool:
        """Mark the step done (first call wins); True if this call did it."""
        key = self.step_key(incident_id, step)
        first = bool(self.r.hsetnx(key, "done_at", time.time()))
        if first:
            self.r.hset(key, "outcome", outcome)
        self.r.expire(key, self.retention_s)
        return first

    def raise_escalation_step(self, incident_key: str, step: int) -> int:
        """Set the incident's ``escalation_step`` to ``step`` if higher; the value after."""
        return int(self._raise_step(keys=[incident_key], args=[step]))

    # -- scheduled jobs ----------------------------------------------------------------------
    def add_job(self, incident_id: str, job_id: str) -> None:
        pipe = self.r.pipeline()
        pipe.sadd(self.jobs_key(incident_id), job_id)
        pipe.expire(self.jobs_key(incident_id), self.retention_s)
        pipe.execute()

    def jobs(self, incident_id: str) -> list[str]:
        return sorted(_s(j) for j in self.r.smembers(self.jobs_key(incident_id)))


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
