"""The recall hot path at 1k, 10k and 100k active lessons in one scope, next to the exact scan
and Qdrant local mode, in one run.

Prints, per size:
- `RecallIndex.recall` p50 / p99 in ms with the query embedding taken out (the queries' vectors
  are looked up, not computed): the default index (exact scan below 20k active lessons, faiss
  IVF past it, see `kaizen/readmodel/segment.py` and `vector_search.py`), and the exact scan
  forced on;
- recall@5 of the default index against the exact scan (the share of the exact top 5 it finds);
- the same queries, with the same filters, on Qdrant local mode (in memory), up to
  `--qdrant-max` lessons (local mode is not meant for more than 20k points; loading 100k into it
  takes longer than the rest of the benchmark);
- at the largest size, 8 threads recalling while a writer updates lessons as fast as it can
  (p50 / p99, updates/s): writes go to the index's overlay, and a new base is compiled in the
  background every few thousand of them (`kaizen/readmodel/index.py`), so this also measures
  recalls during those compiles;
and once: the query embedding alone (MiniLM, one text), which a real recall adds.

Every query filters as an agent's does: a user (their own preferences plus everyone's lessons)
and `tools=` two of 20 tools (lessons about them or about no tool). Lesson vectors are
synthetic but shaped like text embeddings: 384-d, around 2,000 topics (embedding 100k lesson
texts with MiniLM would take longer than the benchmark). Target: p99 < 5 ms at 100k with
recall@5 >= 0.95.

Run: `python bench/recall.py [--sizes 1000 10000 100000] [--queries 300] [--json PATH]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench importable

from bench.common import percentile, write_json
from kaizen.readmodel.index import IndexEntry, RecallIndex
from kaizen.schemas.model import Evidence, Experience, Trigger

DIM, TOOLS, USERS, TOPICS = 384, [f"tool-{t}" for t in range(20)], 100, 2_000
Matrix = npt.NDArray[np.float32]


class LookupEmbedder:
    """Query vectors computed in advance: recall timed without the embedding."""

    def __init__(self) -> None:
        self.dimension, self.model_id = DIM, "bench-synthetic"
        self.vectors: dict[str, npt.NDArray[np.float32]] = {}

    def embed(self, texts: Sequence[str]) -> Matrix:
        return np.stack([self.vectors[t] for t in texts])


def _unit(matrix: npt.NDArray[np.float64]) -> Matrix:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def _lessons(count: int, rng: np.random.Generator, centers: Matrix
             ) -> tuple[list[IndexEntry], Matrix]:
    vectors = _unit(centers[rng.integers(0, TOPICS, count)]
                    + 0.7 * rng.standard_normal((count, DIM)) / np.sqrt(DIM))
    entries = []
    for i in range(count):
        tool = None if rng.random() < 0.3 else TOOLS[int(rng.integers(0, 20))]
        user = f"u{int(rng.integers(0, USERS))}" if rng.random() < 0.1 else None
        experience = Experience(
            event_id=f"ev-{i}", occurred_at=1, tenant="bench", agent="bot",
            experience_id=f"x{i:07d}", version=1, kind="strategy",
            trigger=Trigger(f"{tool}: <n> error {i % 200}", "qa", f"task {i}"),
            guidance=f"lesson {i}", evidence=[Evidence(f"ep-{i}", 0, i, user)],
            support_episodes=2, support_users=1, user=user, tool=tool, status="proposed")
        entries.append(IndexEntry(experience, vectors[i]))
    return entries, vectors


def _queries(embedder: LookupEmbedder, count: int, rng: np.random.Generator, centers: Matrix
             ) -> list[tuple[str, str, list[str]]]:
    vectors = _unit(centers[rng.integers(0, TOPICS, count)]
                    + 0.7 * rng.standard_normal((count, DIM)) / np.sqrt(DIM))
    out = []
    for i in range(count):
        embedder.vectors[f"q{i}"] = vectors[i]
        tools = [TOOLS[int(t)] for t in rng.choice(20, 2, replace=False)]
        out.append((f"q{i}", f"u{int(rng.integers(0, USERS))}", tools))
    return out


def _timed(call: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return sorted(samples)


def _recall(index: RecallIndex, query: tuple[str, str, list[str]]) -> list[str]:
    text, user, tools = query
    return [r.experience_id for r in index.recall(text, agent="bot", tenant="bench", user=user,
                                                  tools=tools, k=5)]


def _latencies(index: RecallIndex, queries: list[tuple[str, str, list[str]]]) -> list[float]:
    for query in queries[:20]:  # warm up
        _recall(index, query)
    return sorted(s for q in queries for s in _timed(partial(_recall, index, q), 1))


def _qdrant(entries: list[IndexEntry], queries: list[tuple[str, str, list[str]]],
            embedder: LookupEmbedder, samples: int) -> list[float]:
    """The same filtered queries on Qdrant local mode (in memory), a sample of them."""
    from qdrant_client import QdrantClient, models  # noqa: PLC0415 - only this figure needs it

    client = QdrantClient(":memory:")
    client.create_collection("bench", vectors_config=models.VectorParams(
        size=DIM, distance=models.Distance.COSINE))
    for start in range(0, len(entries), 5_000):
        client.upsert("bench", points=[models.PointStruct(
            id=start + i, vector=e.vector.tolist() if e.vector is not None else [],
            payload={"user": e.experience.user, "tool": e.experience.tool})
            for i, e in enumerate(entries[start:start + 5_000])], wait=True)

    def query(text: str, user: str, tools: list[str]) -> None:
        no_user = models.IsNullCondition(is_null=models.PayloadField(key="user"))
        no_tool = models.IsNullCondition(is_null=models.PayloadField(key="tool"))
        flt = models.Filter(must=[
            models.Filter(should=[no_user, models.FieldCondition(
                key="user", match=models.MatchValue(value=user))]),
            models.Filter(should=[no_tool, models.FieldCondition(
                key="tool", match=models.MatchAny(any=tools))])])
        client.query_points("bench", query=embedder.vectors[text].tolist(), query_filter=flt,
                            limit=5)
    query(*queries[0])
    out = sorted(s for q in queries[:samples] for s in _timed(partial(query, *q), 1))
    client.close()
    return out


def _concurrent(index: RecallIndex, entries: list[IndexEntry],
                queries: list[tuple[str, str, list[str]]], seconds: float
                ) -> tuple[list[float], float]:
    """8 threads recalling for `seconds` while one thread writes new versions of lessons."""
    stop, samples, updates = threading.Event(), [], [0]

    def reader(offset: int) -> None:
        own: list[float] = []
        i = offset
        while not stop.is_set():
            own.extend(_timed(partial(_recall, index, queries[i % len(queries)]), 1))
            i += 8
        samples.extend(own)

    def writer() -> None:
        rng = np.random.default_rng(1)
        while not stop.is_set():
            entry = entries[int(rng.integers(0, len(entries)))]
            index.upsert(replace(entry, experience=replace(
                entry.experience, version=entry.experience.version + 1 + updates[0])))
            updates[0] += 1

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    threads.append(threading.Thread(target=writer))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)  # a fixed measuring window, not a wait for a fact
    stop.set()
    for thread in threads:
        thread.join()
    rate = updates[0] / (time.perf_counter() - started)
    index.flush()  # a background compile begun in the window: not left running
    return sorted(samples), rate


def _embedding(texts: int) -> list[float]:
    from kaizen.readmodel.embedding import MiniLMEmbedder  # noqa: PLC0415

    embedder = MiniLMEmbedder()
    embedder.embed(["warm up"])
    return sorted(s for i in range(texts)
                  for s in _timed(partial(embedder.embed, [f"check order {i} status"]), 1))


def _label(size: int) -> str:
    return f"{size // 1000}k" if size >= 1000 else str(size)


def run_size(size: int, queries_n: int, qdrant_n: int, qdrant_max: int,
             concurrent_s: float | None) -> dict[str, float]:
    rng = np.random.default_rng(size)
    centers = _unit(rng.standard_normal((TOPICS, DIM)))
    embedder = LookupEmbedder()
    entries, _ = _lessons(size, rng, centers)
    queries = _queries(embedder, queries_n, rng, centers)
    started = time.perf_counter()
    default = RecallIndex(embedder)
    default.load(entries)
    build_s = time.perf_counter() - started
    exact = RecallIndex(embedder, ann_min_rows=None)
    exact.load(entries)
    hits = sum(len(set(_recall(default, q)) & set(_recall(exact, q))) for q in queries)
    want = sum(len(_recall(exact, q)) for q in queries)
    fast, scan = _latencies(default, queries), _latencies(exact, queries)
    del exact
    name = _label(size)
    out = {f"recall_p50_ms_{name}": statistics.median(fast),
           f"recall_p99_ms_{name}": percentile(fast, 0.99),
           f"recall_exact_p50_ms_{name}": statistics.median(scan),
           f"recall_exact_p99_ms_{name}": percentile(scan, 0.99),
           f"recall_at_5_{name}": hits / max(want, 1),
           f"recall_exact_to_index_p99_ratio_{name}": percentile(scan, 0.99) / percentile(
               fast, 0.99), f"index_build_s_{name}": build_s}
    print(f"{name:>5} lessons  recall p50 {out[f'recall_p50_ms_{name}']:7.3f} ms  p99 "
          f"{out[f'recall_p99_ms_{name}']:7.3f} ms  recall@5 {out[f'recall_at_5_{name}']:.3f}  |"
          f"  exact scan p50 {out[f'recall_exact_p50_ms_{name}']:7.3f} p99 "
          f"{out[f'recall_exact_p99_ms_{name}']:7.3f}  |  index load {build_s:.1f} s", flush=True)
    if size <= qdrant_max:
        qdrant = _qdrant(entries, queries, embedder, qdrant_n)
        out[f"qdrant_p50_ms_{name}"] = statistics.median(qdrant)
        out[f"qdrant_p99_ms_{name}"] = percentile(qdrant, 0.99)
        print(f"{name:>5} lessons  the same queries on Qdrant local mode: p50 "
              f"{statistics.median(qdrant):8.1f} ms  p99 {percentile(qdrant, 0.99):8.1f} ms "
              f"({len(qdrant)} queries)", flush=True)
    else:
        print(f"{name:>5} lessons  Qdrant local mode skipped above {qdrant_max:,} points (it is "
              "not meant for more than 20k; --qdrant-max to change)", flush=True)
    if concurrent_s:
        samples, rate = _concurrent(default, entries, queries, concurrent_s)
        out[f"recall_concurrent_p50_ms_{name}"] = statistics.median(samples)
        out[f"recall_concurrent_p99_ms_{name}"] = percentile(samples, 0.99)
        out[f"updates_per_s_{name}"] = rate
        print(f"{name:>5} lessons, 8 threads recalling while lessons are updated: p50 "
              f"{statistics.median(samples):.3f} ms  p99 {percentile(samples, 0.99):.3f} ms  "
              f"({len(samples):,} recalls, {rate:.1f} updates/s)", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="recall hot path at 1k / 10k / 100k lessons")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--qdrant-queries", type=int, default=20)
    parser.add_argument("--qdrant-max", type=int, default=10_000,
                        help="largest size also loaded into Qdrant local mode")
    parser.add_argument("--concurrent-seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    out: dict[str, float] = {}
    for size in args.sizes:
        out.update(run_size(size, args.queries, args.qdrant_queries, args.qdrant_max,
                            args.concurrent_seconds if size == max(args.sizes) else None))
    embed = _embedding(50)
    out.update(embed_p50_ms=statistics.median(embed), embed_p99_ms=percentile(embed, 0.99))
    print(f"query embedding (MiniLM, one text) p50 {out['embed_p50_ms']:.2f} ms  p99 "
          f"{out['embed_p99_ms']:.2f} ms: a recall from a task text adds this")
    print("target: recall p99 < 5 ms at 100k with recall@5 >= 0.95")
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
