"""``triagebot bench``: throughput and latency figures, measured in one run on generated posts.

Figures so far: ingest (replay file → parse → dedupe → Redis stream, one core).
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from bot.channels.replay import ReplaySource
from bot.channels.sandbox import tweet_payload
from bot.store import Store

_WORDS = (
    "queue branch app card fee wait staff counter atm closed again today hours still "
    "nobody answering refund transfer failed login crashed why great thanks camden "
    "piccadilly deansgate high street"
).split()


def generate_payloads(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` realistic stream payloads with varied text, authors and locations."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    out = []
    for i in range(n):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 30)))
        coords = (51.5 + rng.random() / 10, -0.2 + rng.random() / 5) if i % 10 == 0 else None
        out.append(
            tweet_payload(
                f"@NorthbankHelp {words}",
                post_id=str(1_860_000_000_000_000_000 + i),
                author_id=str(rng.randint(1, 10**9)),
                username=f"user{rng.randint(1, 10**6)}",
                location=rng.choice(["London", "Manchester, UK", "", "Earth 🌍"]),
                created_at=start + timedelta(milliseconds=50 * i),
                coordinates=coords,
            )
        )
    return out


@dataclass(frozen=True)
class IngestFigures:
    posts: int
    seconds: float
    posts_per_s: float
    duplicates: int


def bench_ingest(store: Store, n: int = 50_000, repeat_share: float = 0.05) -> IngestFigures:
    """Replay ``n`` posts (plus ``repeat_share`` repeated ones) into the stream on one core."""
    payloads = generate_payloads(n)
    extra = [payloads[i] for i in range(0, n, max(1, int(1 / repeat_share)))]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for p in payloads + extra:
                f.write(json.dumps(p, ensure_ascii=False) + "\n")
        source = ReplaySource(path, batch_size=store.settings.ingest.batch_size)
        stop = threading.Event()
        added = dups = 0
        started = time.perf_counter()
        for batch in source.batches(stop, store.checkpoint):
            result = store.append(batch)
            added += result.added
            dups += result.duplicates
        seconds = time.perf_counter() - started
    total = n + len(extra)
    return IngestFigures(total, seconds, total / seconds, dups)


@dataclass(frozen=True)
class ClassifyFigures:
    posts: int
    tokenizer_posts_per_s: float
    classify_posts_per_s: float

    @property
    def ratio(self) -> float:
        return self.classify_posts_per_s / self.tokenizer_posts_per_s


def bench_classify(n: int = 20_000) -> ClassifyFigures:
    """The installed classifier beside spaCy's bare English tokenizer, on the same posts (the
    project's corpus, repeated to ``n``), one core, best of two runs each."""
    import spacy
    from spacy.tokenizer import Tokenizer

    from bot.nlp.data import CORPUS_DIR, load_corpus
    from bot.nlp.pipeline import load_classifier

    corpus = [r.text for r in load_corpus(CORPUS_DIR)]
    texts = (corpus * (n // len(corpus) + 1))[:n]
    classifier = load_classifier()
    classifier.classify_many(texts[:500])  # warm-up: lazy imports, caches
    tokenizer = cast(Tokenizer, spacy.blank("en").tokenizer)

    def best(run: Any) -> float:
        rates = []
        for _ in range(2):
            started = time.process_time()
            run()
            rates.append(n / (time.process_time() - started))
        return max(rates)

    return ClassifyFigures(
        n,
        best(lambda: list(tokenizer.pipe(texts))),
        best(lambda: classifier.classify_many(texts)),
    )
