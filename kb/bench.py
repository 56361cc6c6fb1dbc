"""Build throughput and query latency of the KB pipeline on synthetic medical-style chunks.

Embedding is the slow part of a build (13-35 chunks/s with MiniLM on a shared 2-core CPU), so
the build is measured on `embed_chunks` chunks written as Markdown files and built through
`KnowledgeBase.build` (load + chunk + embed + index + atomic save). The query index is then grown to
`n_chunks`: the extra chunks are real text (so BM25 works at full size) whose vectors are perturbed
copies of the real ones (faiss cost depends on the count, not the content). Set
`embed_chunks >= n_chunks` to embed everything for real. Query latency includes embedding the query.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

_SYLLABLES = ["ka", "lo", "mir", "ten", "sa", "vor", "qui", "del", "ra", "nox", "bel", "tu", "zan", "pe", "gor"]
_KINDS = ["syndrome", "disease", "fever", "palsy", "dermatitis", "arthritis", "infection", "anaemia"]
_SECTIONS = ["Overview", "Symptoms", "Red flags", "Diagnosis", "Treatment", "When to seek care"]
_SYMPTOMS = ["fever", "a dry cough", "joint pain", "a red rash", "tiredness", "headache", "blurred vision",
             "nausea", "shortness of breath", "swollen ankles", "night sweats", "itchy skin", "chest tightness",
             "dizziness", "muscle cramps", "a sore throat", "weight loss", "back pain", "palpitations", "thirst"]
_TESTS = ["a blood test", "a urine sample", "an X-ray", "an ultrasound scan", "a skin swab", "a breathing test"]
_TREATMENTS = ["rest and fluids", "an antibiotic course", "a steroid cream", "physiotherapy", "an inhaler",
               "pain relief such as paracetamol", "iron tablets", "compression stockings", "a low-salt diet"]
_WHO = ["children", "older adults", "pregnant people", "people with diabetes", "smokers", "athletes"]


def _name(rng: random.Random) -> str:
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
    return f"{word.capitalize()} {rng.choice(_KINDS)}"


def _paragraph(rng: random.Random, name: str, section: str) -> str:
    s = rng.sample(_SYMPTOMS, 4)
    sentences = [
        f"{name} often begins with {s[0]} and {s[1]}, and may later cause {s[2]}.",
        f"It is more common in {rng.choice(_WHO)} and usually lasts {rng.randint(2, 20)} days.",
        f"Clinicians confirm it with {rng.choice(_TESTS)} when the {section.lower()} picture is unclear.",
        f"Most people recover with {rng.choice(_TREATMENTS)}, but {s[3]} should be checked by a doctor.",
        f"Seek urgent care if {s[0]} becomes severe or lasts more than {rng.randint(2, 7)} days.",
    ]
    rng.shuffle(sentences)
    return " ".join(sentences[: rng.randint(3, 5)])


def synthetic_chunks(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """n (title, section, text) triples; every text is one chunk (300-600 characters)."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        name = _name(rng)
        for section in _SECTIONS:
            out.append((name, section, _paragraph(rng, name, section)))
    return out[:n]


def _write_docs(folder: Path, chunks) -> None:
    by_title: dict[str, list] = {}
    for title, section, text in chunks:
        by_title.setdefault(title, []).append((section, text))
    for i, (title, parts) in enumerate(by_title.items()):
        body = "\n\n".join(f"## {sec}\n{text}" for sec, text in parts)
        (folder / f"doc-{i:05d}.md").write_text(f"# {title}\n\n{body}\n", encoding="utf-8")


@contextmanager
def _temp_home():
    old = os.environ.get("MEDCHAT_HOME")
    with tempfile.TemporaryDirectory(prefix="medchat-kb-bench-") as tmp:
        os.environ["MEDCHAT_HOME"] = str(Path(tmp) / "home")
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("MEDCHAT_HOME", None)
            else:
                os.environ["MEDCHAT_HOME"] = old


def _pct(values, q):
    import numpy as np

    return round(float(np.percentile(values, q)) * 1000, 2)


def run(n_chunks: int = 50_000, n_queries: int = 50, embed_chunks: int = 2_000, seed: int = 0) -> dict:
    import numpy as np

    from kb.chunking import Chunk, chunk_id
    from kb.embedder import encode_query, get_embedder
    from kb.knowledge import KnowledgeBase

    embed_chunks = min(embed_chunks, n_chunks)
    corpus = synthetic_chunks(n_chunks, seed)
    model = get_embedder(None)
    model.encode(["warm up"])  # model loading is not build throughput
    result: dict = {"n_chunks": n_chunks, "embedded_chunks": embed_chunks,
                    "synthetic_vector_chunks": n_chunks - embed_chunks, "cpu_count": os.cpu_count()}
    with _temp_home() as tmp:
        docs = tmp / "docs"
        docs.mkdir()
        _write_docs(docs, corpus[:embed_chunks])
        t0 = time.perf_counter()
        kb = KnowledgeBase.build([docs], "bench")
        build_s = time.perf_counter() - t0
        built = len(kb.chunks)
        result.update(build_seconds=round(build_s, 2), build_chunks=built,
                      build_chunks_per_s=round(built / build_s, 1))

        extra = corpus[embed_chunks:]
        if extra:
            rng = np.random.default_rng(seed)
            base = kb.dense.vectors(np.array(list(kb.chunks), dtype="int64"))
            t0 = time.perf_counter()
            for start in range(0, len(extra), 10_000):
                part = extra[start:start + 10_000]
                # noise of norm 0.5 (cosine ~0.9 to the source vector): near-copies, not duplicates
                vecs = base[rng.integers(0, len(base), len(part))] + 0.5 * rng.standard_normal(
                    (len(part), base.shape[1])).astype("float32") / np.sqrt(base.shape[1])
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                first = kb.manifest["next_id"]
                ids = np.arange(first, first + len(part), dtype="int64")
                kb.dense.add(vecs, ids)
                for iid, (title, section, text) in zip(ids.tolist(), part):
                    kb.chunks[iid] = Chunk(chunk_id("synthetic", iid, section, 0, text), text,
                                           f"synthetic/{title}.md", title, section)
                kb.manifest["next_id"] = first + len(part)
            kb._rebuild_bm25()
            result["grow_index_seconds"] = round(time.perf_counter() - t0, 2)

        t0 = time.perf_counter()
        kb._write()
        result["save_seconds"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        kb = KnowledgeBase.open("bench")
        result["open_seconds"] = round(time.perf_counter() - t0, 2)
        result["index"] = kb.dense.kind
        result["size_on_disk_mb"] = round(sum(f.stat().st_size for f in kb.path.rglob("*") if f.is_file()) / 2**20, 1)

        rng = random.Random(seed + 1)
        forms = ["what are the symptoms of {}", "how is {} treated", "is {} serious",
                 "{} in children", "when should I see a doctor about {}"]
        queries = [rng.choice(forms).format(corpus[rng.randrange(n_chunks)][0]) for _ in range(n_queries)]
        for q in queries[:3]:
            kb.search(q, k=5)  # warm caches (stemmer, faiss, thread pool)
        total, emb, dense, lexical = [], [], [], []
        for q in queries:
            t0 = time.perf_counter()
            kb.search(q, k=5)
            total.append(time.perf_counter() - t0)
            # the same query again, split into its parts
            t0 = time.perf_counter()
            vec = encode_query(model, q)
            t1 = time.perf_counter()
            kb.dense.search(vec, 50)
            t2 = time.perf_counter()
            kb.bm25.search(q, 50)
            t3 = time.perf_counter()
            emb.append(t1 - t0)
            dense.append(t2 - t1)
            lexical.append(t3 - t2)
        result.update(query_p50_ms=_pct(total, 50), query_p95_ms=_pct(total, 95),
                      embed_p50_ms=_pct(emb, 50), dense_p50_ms=_pct(dense, 50), bm25_p50_ms=_pct(lexical, 50))
        # how much of the exact dense top-10 the (approximate) index returns
        ids = kb.dense.ids()
        matrix = kb.dense.vectors(ids)
        overlap = []
        for q in queries[:20]:
            vec = encode_query(model, q)
            exact = set(ids[np.argsort(-(matrix @ vec))[:10]].tolist())
            overlap.append(len(exact & {i for i, _ in kb.dense.search(vec, 10)}) / 10)
        result["dense_recall_at_10_vs_exact"] = round(float(np.mean(overlap)), 3)
    return result
