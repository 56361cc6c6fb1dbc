"""`KnowledgeBase`: build, grow, shrink and search one named KB; hybrid dense + BM25 ranking."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from medchat.core.errors import UserError

from kb import store
from kb.chunking import MAX_CHARS, OVERLAP_CHARS, Chunk, chunk_document
from kb.condition_names import with_titles
from kb.embedder import embedder_id_of, encode_query, get_embedder
from kb.loaders import LoadError, discover, file_hash, load_file

DEFAULT_KB = "default"
DEFAULT_DATA = Path(__file__).parent / "data" / "default"
CANDIDATES = 50  # each retriever contributes this many (or 4*k) candidates to the fusion
EMBED_BATCH = 64


@dataclass
class Passage:
    text: str
    source: str
    title: str
    section: str
    score: float  # fused reciprocal-rank score (+ the section boost): the ranking key, higher is better
    chunk_id: str
    similarity: float = 0.0  # cosine similarity of query and passage (what `retrieve` thresholds)
    named: bool = False  # the query names this passage's document (kb.condition_names): kept below the floor

    def citation(self) -> str:
        return f"{self.source} - {self.section}" if self.section else self.source


def passage_dict(p, digits: int | None = None) -> dict:
    """A cited passage (or any object of its shape) as stored in history, eval rows and --json output;
    `digits` rounds the score."""
    score = float(getattr(p, "score", 0.0))
    return {"source": p.source, "title": p.title, "section": getattr(p, "section", ""),
            "score": score if digits is None else round(score, digits), "text": p.text}


def _mismatch(name: str, built: str, wanted: str) -> UserError:
    return UserError(f"KB '{name}' was built with embedder {built}; rebuild it with --embedder {wanted} "
                     f"or query with {built}")


class KnowledgeBase:
    def __init__(self, name: str, manifest: dict, chunks: dict[int, Chunk], dense, bm25):
        self.name, self.manifest, self.chunks, self.dense, self.bm25 = name, manifest, chunks, dense, bm25
        self.path = store.kb_path(name)
        self.last_report: dict = {}

    # ------------------------------------------------------------ opening and building
    @classmethod
    def open(cls, name: str = DEFAULT_KB, embedder=None) -> "KnowledgeBase":
        """Open a stored KB. 'default' is built from the bundled documents on first use and kept in
        step with them afterwards; any other name must have been built (`medchat kb build`)."""
        store.check_name(name)
        if name == DEFAULT_KB:
            kb = cls._open_default()
        elif not store.exists(name):
            raise UserError(f"no knowledge base named '{name}'; create it with "
                            f"`medchat kb build PATH... --name {name}`")
        else:
            kb = cls(name, *store.read(store.kb_path(name)))
        if embedder is not None and embedder_id_of(embedder) != kb.embedder_id:
            raise _mismatch(name, kb.embedder_id, embedder_id_of(embedder))
        return kb

    @classmethod
    def _open_default(cls) -> "KnowledgeBase":
        with store.lock(DEFAULT_KB):
            if not store.exists(DEFAULT_KB):
                kb = cls._from_shipped() or cls._create(DEFAULT_KB, None, None, allow_empty=True)
                kb.manifest["bundled_from"] = "kb/data/default"
                kb._write()
            else:
                kb = cls(DEFAULT_KB, *store.read(store.kb_path(DEFAULT_KB)))
            if kb.manifest.get("bundled_from"):
                kb._sync_bundled()
        return kb

    @classmethod
    def _from_shipped(cls) -> "KnowledgeBase | None":
        """The default KB from the index shipped with the package, when it was built from these very
        documents with this embedder (saves embedding them all on first use); else None."""
        from kb import shipped

        manifest = shipped.usable(DEFAULT_DATA)
        if manifest is None:
            return None
        try:
            return cls(DEFAULT_KB, *shipped.load(manifest))
        except (OSError, ValueError, KeyError, RuntimeError):  # damaged: build from the documents instead
            return None

    def _sync_bundled(self) -> None:
        """Bring the default KB in line with the documents shipped in kb/data/default (new app
        versions add or revise them); documents a user added to it are left alone."""
        files = discover(DEFAULT_DATA)[0] if DEFAULT_DATA.is_dir() else []
        sources = self.manifest["sources"]
        bundled = {s for s, meta in sources.items() if meta.get("bundled")}
        changed = [f for f in files if sources.get(f.source, {}).get("sha256") != file_hash(f.path)]
        gone = sorted(bundled - {f.source for f in files})
        if not changed and not gone:
            return
        for source in gone:
            self._drop_source(source)
        report = self._ingest([DEFAULT_DATA], bundled=True) if changed else {}  # unchanged: skipped by hash
        if gone:
            self._rebuild_bm25()
        if gone or report.get("added") or report.get("updated"):  # an unreadable file alone changes nothing
            self._write()

    @classmethod
    def build(cls, paths, name: str, embedder=None, text_field: str | None = None,
              progress=None) -> "KnowledgeBase":
        """Build (or rebuild, replacing) KB `name` from files and folders."""
        store.check_name(name)
        with store.lock(name):
            kb = cls._create(name, embedder, text_field, allow_empty=False, paths=paths, progress=progress)
            kb._write()
        return kb

    @classmethod
    def _create(cls, name, embedder, text_field, allow_empty, paths=None, progress=None) -> "KnowledgeBase":
        from kb.index import BM25Index, DenseIndex, tokenizer_name

        model = get_embedder(embedder)
        manifest = {
            "format": store.FORMAT, "name": name,
            "embedder": {"id": model.id, "dim": int(model.dim)},
            "bm25_tokenizer": tokenizer_name(), "text_field": text_field,
            "chunking": {"max_chars": MAX_CHARS, "overlap_chars": OVERLAP_CHARS},
            "counts": {"sources": 0, "chunks": 0}, "sources": {}, "next_id": 0, "version": 0,
            "created": store.now(), "updated": store.now(),
        }
        kb = cls(name, manifest, {}, DenseIndex(model.dim), BM25Index.build([], []))
        kb._model = model
        if paths is None:
            paths = [DEFAULT_DATA] if DEFAULT_DATA.is_dir() else []
            report = kb._ingest(paths, bundled=True, progress=progress)
        else:
            report = kb._ingest(paths, progress=progress)
        if not kb.chunks and not allow_empty:
            detail = "; ".join(f"{s}: {why}" for s, why in report["problems"][:3])
            raise UserError(f"no readable documents in {', '.join(map(str, paths))}"
                            + (f" ({detail})" if detail else "") + "; nothing was built")
        return kb

    # ------------------------------------------------------------ changing
    def add(self, paths, text_field: str | None = None, progress=None) -> dict:
        """Index new or changed files; unchanged ones are skipped. Returns counts (added, updated,
        skipped, unreadable, chunks) and `problems`, a list of (source, reason)."""
        with self._changing():
            report = self._ingest(paths, text_field=text_field, progress=progress)
            if report["added"] or report["updated"]:
                self._write()
        return report

    def remove(self, source: str) -> int:
        """Drop every chunk of `source`; returns how many were removed (0 if it was not indexed)."""
        with self._changing():
            known = source in self.manifest["sources"]
            removed = self._drop_source(source)
            if removed or known:
                self._rebuild_bm25()
                self._write()
        return removed

    def _ingest(self, paths, text_field=None, bundled=False, progress=None) -> dict:
        text_field = text_field or self.manifest.get("text_field")
        files, problems = discover(paths)
        report = {"added": 0, "updated": 0, "skipped": 0, "unreadable": len(problems), "chunks": 0}
        new: list[Chunk] = []
        for f in files:
            digest = file_hash(f.path)
            old = self.manifest["sources"].get(f.source)
            if old and old["sha256"] == digest:
                report["skipped"] += 1
                continue
            try:
                docs = load_file(f.path, f.source, text_field)
            except LoadError as exc:
                problems.append((f.source, str(exc)))
                report["unreadable"] += 1
                continue
            pieces = [c for d in docs for c in chunk_document(d)]
            if old:
                self._drop_source(f.source)
            report["updated" if old else "added"] += 1
            self.manifest["sources"][f.source] = {"sha256": digest, "chunks": len(pieces),
                                                  "added": store.now(), "bundled": bundled}
            new += pieces
        if new:
            self._index(new, progress)
            report["chunks"] = len(new)
        if new or report["updated"]:
            self._rebuild_bm25()
        report["problems"] = problems
        self.last_report = report
        return report

    def _index(self, new: list[Chunk], progress=None) -> None:
        import numpy as np

        model = self._embedder()
        first = int(self.manifest["next_id"])
        ids = np.arange(first, first + len(new), dtype="int64")
        texts = [c.embed_text() for c in new]
        parts = []
        for start in range(0, len(texts), 512):  # slices keep the progress display moving
            parts.append(model.encode(texts[start:start + 512], batch_size=EMBED_BATCH))
            if progress:
                progress(min(start + 512, len(texts)), len(texts))
        vectors = np.concatenate(parts)
        if vectors.shape[1] != self.dense.dim:
            raise _mismatch(self.name, self.embedder_id, model.id)
        self.dense.add(vectors, ids)
        self.chunks.update(zip(ids.tolist(), new))
        self.manifest["next_id"] = first + len(new)

    def _drop_source(self, source: str) -> int:
        ids = [i for i, c in self.chunks.items() if c.source == source]
        self.dense.remove(ids)
        for i in ids:
            del self.chunks[i]
        self.manifest["sources"].pop(source, None)
        return len(ids)

    def _rebuild_bm25(self) -> None:
        from kb.index import BM25Index

        self.bm25 = BM25Index.build([c.embed_text() for c in self.chunks.values()], list(self.chunks))

    @contextmanager
    def _changing(self):
        """Lock, start from the latest stored version, and if anything fails (embedding, disk)
        drop the half-made in-memory changes too: nothing reached the disk, so reload it."""
        with store.lock(self.name):
            self.refresh()
            try:
                yield
            except BaseException:
                if store.exists(self.name):
                    self.manifest, self.chunks, self.dense, self.bm25 = store.read(self.path)
                raise

    def _write(self) -> None:
        m = self.manifest
        m["counts"] = {"sources": len(m["sources"]), "chunks": len(self.chunks)}
        m["index"] = self.dense.kind
        m["updated"] = store.now()
        m["version"] = int(m.get("version", 0)) + 1
        store.sweep_leftovers(self.name)
        store.write(self.path, m, self.chunks, self.dense, self.bm25)

    def refresh(self) -> bool:
        """Reload if another process changed the stored KB since we read it; True when it did."""
        try:
            stale = store.read_manifest(self.path).get("version") != self.manifest.get("version")
        except FileNotFoundError:
            return False
        if stale:
            self.manifest, self.chunks, self.dense, self.bm25 = store.read(self.path)
        return stale

    # ------------------------------------------------------------ reading
    @property
    def embedder_id(self) -> str:
        return self.manifest["embedder"]["id"]

    def _embedder(self):
        model = getattr(self, "_model", None)
        if model is None:
            model = self._model = get_embedder(self.embedder_id)
        if int(model.dim) != int(self.manifest["embedder"]["dim"]):
            raise _mismatch(self.name, self.embedder_id, model.id)
        return model

    def search(self, query: str, k: int = 5, rerank: bool = True) -> list[Passage]:
        """Hybrid search, best first: dense and BM25 candidates fused by reciprocal rank; the top `k`
        are then re-ranked by the section the question asks about (`kb.section_intent`). A condition the
        query names (`kb.condition_names`) is searched for by its title too, and its passages are `named`."""
        from kb import section_intent
        from kb.index import rrf

        if k <= 0 or not query.strip() or not self.chunks:
            return []
        names = self.condition_names()
        named = names.named(query)
        query = with_titles(query, sorted(names.titles[s] for s in named))
        qvec = encode_query(self._embedder(), query)
        n = max(CANDIDATES, 4 * k)
        dense_hits = self.dense.search(qvec, n)
        lexical = self.bm25.search(query, n)
        cosine = dict(dense_hits)
        fused = rrf([[i for i, _ in dense_hits], [i for i, _ in lexical]])[:k]
        missing = [i for i, _ in fused if i not in cosine]
        if missing:  # lexical-only hits: their cosine is computed from the stored vectors
            cosine.update(zip(missing, (self.dense.vectors(missing) @ qvec).tolist()))
        out = []
        for iid, score in fused:
            c = self.chunks[iid]
            out.append(Passage(c.text, c.source, c.title, c.section, float(score), c.chunk_id,
                               float(cosine[iid]), c.source in named))
        head = section_intent.load() if rerank and out else None
        if head is not None:
            out = section_intent.rerank(out, head.probabilities(query))
        return out

    def condition_names(self):
        """The titles and aliases of the indexed documents (kb.condition_names), rebuilt when the KB changes."""
        from kb.condition_names import ConditionNames

        key = (self.manifest.get("version"), len(self.chunks))
        cached = getattr(self, "_names", None)
        if cached is None or cached[0] != key:
            cached = self._names = (key, ConditionNames(self.chunks.values()))
        return cached[1]

    def sources(self) -> list[str]:
        return sorted(self.manifest["sources"])

    def info(self) -> dict:
        m = self.manifest
        return {
            "name": self.name, "path": str(self.path),
            "embedder": m["embedder"]["id"], "dim": m["embedder"]["dim"],
            "index": self.dense.kind, "chunks": len(self.chunks), "sources": len(m["sources"]),
            "created": m["created"], "updated": m["updated"],
            "bm25_tokenizer": m.get("bm25_tokenizer"), "text_field": m.get("text_field"),
            "bundled": bool(m.get("bundled_from")),
            "files": [{"source": s, "chunks": meta["chunks"], "sha256": meta["sha256"], "added": meta["added"]}
                      for s, meta in sorted(m["sources"].items())],
        }
