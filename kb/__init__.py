"""Local knowledge bases for medchat: load documents, chunk, embed, index, and retrieve with citations.

Importing this package is cheap: torch, sentence-transformers, faiss and bm25s load on first use.

    from kb import retrieve
    for p in retrieve("how is shingles treated?"):
        print(p.text, p.source, p.section)
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from kb import store
from kb.knowledge import DEFAULT_KB, KnowledgeBase, Passage, passage_dict

__all__ = ["KnowledgeBase", "Passage", "passage_dict", "embedder_for", "list_kbs", "retrieve", "turn_query",
           "vocabulary", "warm", "DEFAULT_MIN_SIMILARITY"]

# Cosine similarity (all-MiniLM-L6-v2, normalised) a passage needs for `retrieve` to hand it to the
# chat. Measured on the bundled KB (163 documents, 1010 chunks) with the 163 bundled questions: the
# best passage scored >= 0.32 for all but one question (median 0.63), and `retrieve` returned the
# expected source for 95% of them; 23 off-topic messages ("hello", "how do I bake sourdough bread?",
# "fix a leaking tap") peaked at 0.29 (median 0.17), so they get no passages. Another embedder may
# need another value: pass `min_score`.
DEFAULT_MIN_SIMILARITY = 0.32

_open: dict[str, KnowledgeBase] = {}
_open_lock = threading.Lock()
_warming: dict[str, Future] = {}
_vocab: dict[str, tuple] = {}


def warm(name: str = DEFAULT_KB) -> Future:
    """Open KB `name` and load its embedder and indexes in a background thread (a first use may also
    build its index), so that work overlaps loading the chat model instead of delaying the first answer.
    The future's result() re-raises what went wrong; `retrieve` and `embedder_for` wait for it first."""
    future: Future = Future()

    def run() -> None:
        try:
            _cached(name, wait=False).search("warm-up", k=1)
            future.set_result(None)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            future.set_exception(exc)

    _warming[str(store.kb_path(name))] = future
    threading.Thread(target=run, name=f"kb-warm-{name}", daemon=True).start()
    return future


def _cached(name: str, wait: bool = True) -> KnowledgeBase:
    key = str(store.kb_path(name))  # by location: MEDCHAT_HOME may change (tests, profiles)
    pending = _warming.get(key) if wait else None
    if pending is not None:  # one load at a time; its error, if any, the search below meets again
        pending.exception()
        _warming.pop(key, None)
    with _open_lock:
        kb = _open.get(key)
        if kb is None:
            kb = _open[key] = KnowledgeBase.open(name)
        else:
            kb.refresh()
        return kb


def retrieve(query: str, kb: str = DEFAULT_KB, k: int = 4, min_score: float | None = None) -> list[Passage]:
    """Up to `k` passages relevant enough to show the chat model, best first; [] when none is.

    Relevance is the dense cosine similarity (`Passage.similarity`); passages below `min_score`
    (default `DEFAULT_MIN_SIMILARITY`) are dropped even if BM25 ranked them high, unless the query
    names their document (`Passage.named`, kb.condition_names).
    """
    if not query or not query.strip() or k <= 0:
        return []
    threshold = DEFAULT_MIN_SIMILARITY if min_score is None else min_score
    hits = _cached(kb).search(query, k=max(k, 8))
    return [p for p in hits if p.similarity >= threshold or p.named][:k]


def turn_query(earlier: list[str] | tuple[str, ...], text: str) -> str:
    """What a chat turn searches with: the latest earlier user question, then this one, so a
    follow-up ("and for children?") keeps its topic. The chat, the doctor SFT data and the section
    head all build their queries here."""
    return " ".join([*earlier[-1:], text])


def embedder_for(kb: str = DEFAULT_KB):
    """The embedder KB `kb` was built with (loaded once per process), e.g. to score sentences of
    its passages against a question on the same scale as `retrieve`."""
    return _cached(kb)._embedder()


def vocabulary(kb: str = DEFAULT_KB) -> frozenset:
    """Every word (3+ letters, lowercase) of KB `kb`'s chunks, titles and aliases included; recomputed
    when the KB changes. Lets the chat tell a term the KB never mentions from one it ranked low."""
    import re

    base = _cached(kb)
    where = str(store.kb_path(kb))  # by location, like the open KBs
    version = (base.manifest.get("version"), len(base.chunks))
    cached = _vocab.get(where)
    if cached is None or cached[0] != version:
        words = frozenset(re.findall(r"[a-z]{3,}", " ".join(c.embed_text() for c in base.chunks.values()).lower()))
        _vocab[where] = cached = (version, words)
    return cached[1]


def list_kbs() -> list[dict]:
    """One summary per stored KB; 'default' is always listed (`built` False until first use)."""
    out = []
    for name in store.list_names():
        try:
            m = store.read_manifest(store.kb_path(name))
        except Exception as exc:  # noqa: BLE001 - a damaged KB is listed with its problem, not hidden
            out.append({"name": name, "built": True, "error": str(exc)})
            continue
        out.append({"name": name, "built": True, "embedder": m["embedder"]["id"], "index": m.get("index"),
                    "sources": m["counts"]["sources"], "chunks": m["counts"]["chunks"], "updated": m["updated"]})
    if DEFAULT_KB not in {e["name"] for e in out}:
        out.insert(0, {"name": DEFAULT_KB, "built": False, "embedder": None, "index": None,
                       "sources": 0, "chunks": 0, "updated": None})
    return out
