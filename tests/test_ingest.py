"""The listener: every post lands once in the stream or in the dead-letter list with a reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

from bot.channels.replay import ReplaySource
from bot.config import Settings
from bot.ingest import Listener, Supervised
from bot.store import Store
from tests.factories import line, replay_file, x_payload

ROOT = Path(__file__).resolve().parent.parent


def run_replay(store: Store, path: Path, **kw: float) -> Supervised:
    sup = Supervised(ReplaySource(path, batch_size=100, **kw), finite=True)  # type: ignore[arg-type]
    Listener(store, [sup], heartbeat_every=0.5).run()
    return sup


def test_replay_lands_every_post_once_and_bad_input_in_dead_letters(
    store: Store, tmp_path: Path
) -> None:
    repeated = line(x_payload("same post, sent three times @NorthbankHelp", n=7))
    bad = [
        line(x_payload(n=900))[:-15],  # truncated JSON
        b'{"matching_rules": [{"id": "1"}]}',  # no data
        line(x_payload("", n=901)),  # empty text
        line(x_payload("x" * 25_001, n=902)),  # too long
        b'{"data": {"id": "903", "text": "caf\xe9", "author_id": "1"}}',  # invalid UTF-8
    ]
    path = replay_file(tmp_path / "r.jsonl", 250, extra_lines=[repeated, repeated, *bad, b""])
    sup = run_replay(store, path)
    ids = [p.id for _, p in store.stream_posts()]
    assert len(ids) == len(set(ids)) == 250  # post 7 is the repeated one: kept once
    assert (sup.stats.added, sup.stats.duplicates, sup.stats.dead) == (250, 2, 5)
    reasons = [d["reason"] for d in store.dead_letters()]
    assert any("truncated JSON" in r for r in reasons)
    assert any("no 'data'" in r for r in reasons)
    assert any("empty text" in r for r in reasons)
    assert any("over the 25000 limit" in r for r in reasons)
    assert any("not UTF-8" in r for r in reasons)


def test_replaying_the_same_file_again_adds_nothing(store: Store, tmp_path: Path) -> None:
    path = replay_file(tmp_path / "r.jsonl", 120)
    run_replay(store, path)
    store.r.hdel(store.checkpoints_key, ReplaySource(path).checkpoint_name)  # forget position
    again = run_replay(store, path)
    assert store.stream_length() == 120
    assert (again.stats.added, again.stats.duplicates) == (0, 120)


def test_posts_arrive_in_the_consumer_group(store: Store, tmp_path: Path) -> None:
    run_replay(store, replay_file(tmp_path / "r.jsonl", 10))
    group = store.settings.ingest.consumer_group
    entries = store.r.xreadgroup(group, "c1", {store.stream_key: ">"}, count=100)
    assert len(entries[0][1]) == 10


def test_listener_killed_mid_stream_loses_and_duplicates_nothing(
    settings: Settings, store: Store, tmp_path: Path, redis_url: str
) -> None:
    n = 6000
    path = replay_file(tmp_path / "r.jsonl", n)
    env = {**os.environ, "REDIS_URL": redis_url, "TRIAGE_INGEST__BATCH_SIZE": "50"}
    cmd = [sys.executable, "-m", "bot.cli", "listen", "--replay", str(path), "--rate", "4000"]
    for _ in range(3):  # kill it three times at different points, then let it finish
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        start = store.stream_length()
        while store.stream_length() < start + 600 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert 0 < store.stream_length() < n  # it really was killed mid-file
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    ids = [p.id for _, p in store.stream_posts()]
    assert len(ids) == n and len(set(ids)) == n


def test_sigterm_stops_gracefully_and_saves_position(
    store: Store, tmp_path: Path, redis_url: str
) -> None:
    path = replay_file(tmp_path / "r.jsonl", 3000)
    env = {**os.environ, "REDIS_URL": redis_url}
    cmd = [sys.executable, "-m", "bot.cli", "listen", "--replay", str(path), "--rate", "1000"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE)
    while store.stream_length() < 100:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert b"new, 0 duplicate" in out
    saved = int(store.checkpoint(ReplaySource(path).checkpoint_name) or 0)
    assert 0 < saved < path.stat().st_size


def test_exclusive_source_runs_in_one_listener_and_a_standby_takes_over(
    make_settings: object, redis_client: redis.Redis, tmp_path: Path, settings: Settings
) -> None:
    s = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"lock_ttl_seconds": 2})}
    )
    path = replay_file(tmp_path / "r.jsonl", 400)
    first_stop, second_stop = threading.Event(), threading.Event()

    def listener(stop: threading.Event) -> tuple[Listener, threading.Thread]:
        src = ReplaySource(path, batch_size=10, rate=200)
        src.name = "shared-source"  # both listeners compete for the same lock
        lst = Listener(
            Store(redis_client, s),
            [Supervised(src, exclusive=True, finite=True)],
            stop=stop,
            heartbeat_every=0.3,
        )
        t = threading.Thread(target=lst.run, daemon=True)
        t.start()
        return lst, t

    first, t1 = listener(first_stop)
    time.sleep(0.3)
    second, t2 = listener(second_stop)
    store = Store(redis_client, s)
    time.sleep(0.5)
    assert store.lock_owner("shared-source") == first.owner
    assert second.sources[0].stats.batches == 0  # standing by
    first_stop.set()  # the first goes away mid-file; the second resumes from its checkpoint
    t1.join(timeout=10)
    t2.join(timeout=30)
    assert not t2.is_alive()
    assert second.sources[0].stats.added > 0
    ids = [p.id for _, p in store.stream_posts()]
    assert len(ids) == len(set(ids)) == 400
