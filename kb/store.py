"""On-disk layout of one knowledge base, written atomically as a whole folder.

    <kb_dir>/<name>/manifest.json   embedder id + dimension, counts, sources with hashes, dates
                    chunks.jsonl    one live chunk per line; line i is row i of the BM25 index
                    dense.faiss     faiss IndexIDMap2 (flat or HNSW) keyed by the chunk's int id
                    bm25/           bm25s index files (absent while the KB is empty)

Every change writes a complete new folder into a staging dir and renames it into place, so a crash
or a full disk leaves the previous version intact. A per-KB lock file serialises writers.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from medchat.core import paths
from medchat.core.errors import UserError

from kb.chunking import Chunk

FORMAT = 1
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
DENSE = "dense.faiss"
BM25_DIR = "bm25"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # fullmatch: `$` would let a trailing newline in


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UserError(f"invalid knowledge base name {name!r}: use letters, digits, '.', '-' or '_' "
                        "(at most 64 characters, starting with a letter or digit)")
    return name


def kb_path(name: str) -> Path:
    return paths.kb_dir() / check_name(name)


def exists(name: str) -> bool:
    return (kb_path(name) / MANIFEST).is_file()


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise UserError(f"the knowledge base at {folder} is damaged ({exc}); "
                        f"rebuild it with `medchat kb build PATH... --name {folder.name}`") from exc
    if manifest.get("format") != FORMAT:
        raise UserError(f"the knowledge base at {folder} has format {manifest.get('format')!r}, this "
                        f"version reads {FORMAT}; rebuild it with `medchat kb build PATH... --name {folder.name}`")
    return manifest


def _chunk_record(iid: int, c: Chunk) -> dict:
    return {"id": iid, "chunk_id": c.chunk_id, "source": c.source, "title": c.title,
            "section": c.section, "aliases": list(c.aliases), "text": c.text}


def write(folder: Path, manifest: dict, chunks: dict[int, Chunk], dense, bm25) -> None:
    """Write the whole KB into a staging dir and swap it in. `chunks` order must match `bm25.keys`."""
    with paths.staging_dir(folder) as tmp:
        with open(tmp / CHUNKS, "w", encoding="utf-8") as fh:
            for iid, chunk in chunks.items():
                fh.write(json.dumps(_chunk_record(iid, chunk), ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        dense.save(tmp / DENSE)
        if bm25.retriever is not None:
            (tmp / BM25_DIR).mkdir()
            bm25.save(tmp / BM25_DIR)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")


def read(folder: Path):
    """(manifest, chunks by int id, DenseIndex, BM25Index) of a stored KB."""
    from kb.index import BM25Index, DenseIndex, tokenizer_name

    manifest = read_manifest(folder)
    chunks: dict[int, Chunk] = {}
    try:
        with open(folder / CHUNKS, encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                chunks[int(r["id"])] = Chunk(r["chunk_id"], r["text"], r["source"], r["title"],
                                             r["section"], tuple(r.get("aliases", ())))
        dense = DenseIndex.load(folder / DENSE, int(manifest["embedder"]["dim"]), chunks.keys())
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise UserError(f"the knowledge base at {folder} is damaged ({exc}); "
                        f"rebuild it with `medchat kb build PATH... --name {folder.name}`") from exc
    keys = list(chunks)
    if manifest.get("bm25_tokenizer") == tokenizer_name() and (folder / BM25_DIR).is_dir():
        bm25 = BM25Index.load(folder / BM25_DIR, keys, manifest["bm25_tokenizer"])
    else:  # built where another tokenizer was available: re-index the text here (seconds at most)
        bm25 = BM25Index.build([c.embed_text() for c in chunks.values()], keys)
    return manifest, chunks, dense, bm25


@contextmanager
def lock(name: str):
    """Exclusive lock for writers of one KB (no-op where fcntl is missing, i.e. Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock_file = paths.kb_dir() / f".{check_name(name)}.lock"
    with open(lock_file, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def list_names() -> list[str]:
    root = paths.kb_dir()
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file())


def sweep_leftovers(name: str) -> None:
    """Remove staging dirs an interrupted writer of this KB left behind (call under `lock`)."""
    import shutil

    paths.recover(paths.kb_dir() / name)  # a crash between the two renames of a replace
    pattern = re.compile(rf"\.(staging|old)-{re.escape(name)}-[A-Za-z0-9_]+")
    for p in paths.kb_dir().iterdir():
        if p.is_dir() and pattern.fullmatch(p.name) and not p.name.endswith(f"-{os.getpid()}"):
            rest = p.name.split(f"-{name}-", 1)[1]
            if "-" not in rest:  # another KB whose name starts with ours has a longer remainder
                shutil.rmtree(p, ignore_errors=True)
