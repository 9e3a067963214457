"""Embedding throughput and latency: MiniLM (int8 ONNX, CPU) next to HashingEmbedder.

Recall embeds task texts one at a time on the hot path and in batches when
back-filling lessons, so both figures matter: texts/s for a batch of 1,000
short task texts, and the p50/p95 latency of a single uncached text. The
hashing stand-in runs in the same process as a floor for comparison.

Run: ``python bench/embedding.py [--threads 1 2]`` (after ``make setup``), or
``python -m bench.embedding`` from the repository root.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

import numpy as np

from kaizen.readmodel.embedding import Embedder, HashingEmbedder, MiniLMEmbedder

VERBS = ["fix", "add", "remove", "retry", "migrate", "deploy", "debug", "refactor", "document"]
OBJECTS = [
    "the search query",
    "the billing service",
    "a flaky integration test",
    "the kafka consumer group",
    "the login page",
    "the nightly export job",
    "quotation marks in the query",
    "the customer's invoice",
    "the staging database",
    "an expired TLS certificate",
]
CONTEXTS = [
    "",
    "after the last release",
    "because it times out",
    "for the EU region",
    "before Friday",
    "when the cache is cold",
    "without downtime",
]


def task_texts(count: int, seed: int = 0) -> list[str]:
    """Deterministic short task texts like the ones agents report (5 to 15 words)."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(CONTEXTS)} #{i}".replace("  ", " ")
        for i in range(count)
    ]


def batch_rate(embedder: Embedder, texts: Sequence[str], repeats: int = 3) -> float:
    """Best-of-``repeats`` texts per second for one ``embed`` call over all ``texts``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        embedder.embed(texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def single_latencies(embedder: Embedder, texts: Sequence[str]) -> list[float]:
    """Milliseconds per ``embed([text])`` call, one per text."""
    out = []
    for text in texts:
        start = time.perf_counter()
        embedder.embed([text])
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=1000, help="texts in the batch run")
    parser.add_argument("--singles", type=int, default=200, help="single-text calls timed")
    args = parser.parse_args(argv)

    batch = task_texts(args.batch)
    singles = task_texts(args.singles, seed=1)
    rows: list[tuple[str, float, float, float]] = []

    for threads in args.threads:
        embedder = MiniLMEmbedder(intra_op_num_threads=threads, cache_size=0)
        start = time.perf_counter()
        embedder.load()
        embedder.embed(["warm up"])
        load_s = time.perf_counter() - start
        print(f"MiniLM threads={threads}: verify + load + first embed {load_s:.2f}s")
        lat = single_latencies(embedder, singles)
        rows.append(
            (
                f"MiniLM int8, {threads} thread(s)",
                batch_rate(embedder, batch),
                percentile(lat, 50),
                percentile(lat, 95),
            )
        )

    cached = MiniLMEmbedder(intra_op_num_threads=args.threads[0])
    cached.embed([singles[0]])
    hit = single_latencies(cached, [singles[0]] * args.singles)
    print(f"MiniLM LRU cache hit: p50 {percentile(hit, 50):.3f} ms")

    hashing = HashingEmbedder()
    hashing.embed(["warm up"])
    lat = single_latencies(hashing, singles)
    rows.append(
        (
            "HashingEmbedder (not semantic)",
            batch_rate(hashing, batch),
            percentile(lat, 50),
            percentile(lat, 95),
        )
    )

    print()
    print(f"{'embedder':34} {'batch texts/s':>14} {'single p50 ms':>14} {'single p95 ms':>14}")
    for name, rate, p50, p95 in rows:
        print(f"{name:34} {rate:14,.0f} {p50:14.3f} {p95:14.3f}")
    print(f"\nbatch = {len(batch)} short task texts; singles = {len(singles)} uncached texts")


if __name__ == "__main__":
    main()
