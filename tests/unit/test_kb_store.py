"""KnowledgeBase with a fake embedder: build, add/remove consistency, persistence, atomicity, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kb import KnowledgeBase, list_kbs, retrieve
from kb import index as kbindex
from tests.support.hashing_embedder import HashingEmbedder
from medchat.core import paths
from medchat.core.errors import UserError

DATA = Path(__file__).parents[1] / "data" / "kb"


@pytest.fixture
def fake():
    return HashingEmbedder(64)


@pytest.fixture
def docs(tmp_path):
    """A private copy of the fixture documents that tests may edit."""
    return Path(shutil.copytree(DATA / "docs", tmp_path / "docs"))


def sources(passages):
    return [p.source for p in passages]


def test_import_kb_is_cheap():
    code = "import sys, kb; heavy = [m for m in ('torch', 'faiss', 'sentence_transformers', 'bm25s') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == "[]"


def test_build_search_and_layout(docs, fake):
    base = KnowledgeBase.build([docs], "t", embedder=fake)
    report = base.last_report
    assert report["added"] == 4 and report["unreadable"] == 0 and report["chunks"] == len(base.chunks) > 10
    folder = paths.kb_dir() / "t"
    assert {p.name for p in folder.iterdir()} == {"manifest.json", "chunks.jsonl", "dense.faiss", "bm25"}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["embedder"] == {"id": fake.id, "dim": 64}
    assert manifest["counts"] == {"sources": 4, "chunks": len(base.chunks)}
    assert set(manifest["sources"]) == {"asthma.md", "influenza.md", "notes/hydration.txt", "velmora-fever.md"}
    assert all(len(m["sha256"]) == 64 for m in manifest["sources"].values())
    hits = base.search("kelvaran bark tea cure", k=3)
    assert hits[0].source == "velmora-fever.md" and hits[0].section == "Treatment"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len({h.chunk_id for h in hits}) == 3
    assert base.search("   ", k=3) == [] and base.search("flu", k=0) == []


def test_persistence_round_trip(docs, fake):
    built = KnowledgeBase.build([docs, DATA / "formats"], "t", embedder=fake)
    queries = ["inhaler for wheezing", "violet ring", "measles rash", "sunburn aloe", "nosebleed"]
    before = [built.search(q, k=4) for q in queries]
    reopened = KnowledgeBase.open("t")
    assert reopened.info() == built.info()
    assert [reopened.search(q, k=4) for q in queries] == before


def test_add_remove_consistency(docs, fake):
    base = KnowledgeBase.build([docs], "t", embedder=fake)
    n_before = len(base.chunks)
    report = base.add([DATA / "formats"])
    assert report["added"] == 4 and report["unreadable"] == 0
    assert "diseases.csv" in sources(base.search("tetanus spores wound", k=3))

    velmora = base.manifest["sources"]["velmora-fever.md"]["chunks"]
    assert base.remove("velmora-fever.md") == velmora
    for q in ["velmora fever", "kelvaran bark tea", "violet ring quellin mite Tarsk", "lantern test saliva"]:
        assert "velmora-fever.md" not in sources(base.search(q, k=50))
    reopened = KnowledgeBase.open("t")
    assert "velmora-fever.md" not in reopened.sources()
    assert "velmora-fever.md" not in sources(reopened.search("velmora kelvaran", k=50))
    assert len(reopened.chunks) == n_before + report["chunks"] - velmora
    assert reopened.remove("velmora-fever.md") == 0

    # adding it back makes it findable again
    again = reopened.add([docs / "velmora-fever.md"])
    assert again["added"] == 1
    assert reopened.search("kelvaran bark tea", k=1)[0].source == "velmora-fever.md"


def test_unchanged_files_are_skipped_and_changed_ones_replaced(docs, fake):
    base = KnowledgeBase.build([docs], "t", embedder=fake)
    calls = fake.calls
    report = base.add([docs])
    assert (report["added"], report["updated"], report["skipped"]) == (0, 0, 4) and fake.calls == calls
    (docs / "asthma.md").write_text("# Asthma\n\n## Treatment\nA zorblatt inhaler is the new reliever.\n")
    report = base.add([docs])
    assert (report["added"], report["updated"], report["skipped"]) == (0, 1, 3)
    assert base.manifest["sources"]["asthma.md"]["chunks"] == 1
    texts = [p.text for p in base.search("asthma inhaler reliever", k=50) if p.source == "asthma.md"]
    assert texts == ["A zorblatt inhaler is the new reliever."]


def test_unreadable_files_are_counted_and_skipped(docs, fake, tmp_path):
    (docs / "scan.pdf").write_bytes(b"%PDF-1.4 not really")
    (docs / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    (docs / "blob.txt").write_bytes(b"\x00\x00\x00")
    base = KnowledgeBase.build([docs], "t", embedder=fake)
    report = base.last_report
    assert report["added"] == 4 and report["unreadable"] == 3
    assert {s for s, _ in report["problems"]} == {"scan.pdf", "photo.jpg", "blob.txt"}
    assert "scan.pdf" not in base.sources()


def test_build_with_nothing_readable_is_a_user_error_and_writes_nothing(tmp_path, fake):
    (tmp_path / "only.pdf").write_bytes(b"garbage")
    with pytest.raises(UserError, match="no readable documents"):
        KnowledgeBase.build([tmp_path], "t", embedder=fake)
    assert not (paths.kb_dir() / "t").exists()


def test_failed_write_leaves_previous_version(docs, fake, monkeypatch):
    base = KnowledgeBase.build([docs], "t", embedder=fake)
    before = KnowledgeBase.open("t").info()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(kbindex.BM25Index, "save", boom)
    with pytest.raises(OSError):
        base.add([DATA / "formats"])
    assert KnowledgeBase.open("t").info() == before
    assert base.info() == before  # the handle rolled back to what is on disk
    assert [p.name for p in paths.kb_dir().iterdir() if p.name.startswith((".staging", ".old"))] == []


def test_embedder_mismatch_is_a_clear_user_error(docs, fake):
    KnowledgeBase.build([docs], "t", embedder=fake)
    other = HashingEmbedder(32, id="other-embedder")
    with pytest.raises(UserError) as err:
        KnowledgeBase.open("t", embedder=other)
    message = str(err.value)
    assert message == (f"KB 't' was built with embedder {fake.id}; rebuild it with --embedder other-embedder "
                       f"or query with {fake.id}")
    assert KnowledgeBase.open("t", embedder=fake.id).name == "t"


def test_model_with_other_dimension_under_same_id_is_refused(docs, fake, monkeypatch):
    KnowledgeBase.build([docs], "t", embedder=fake)
    from kb import embedder as emb

    monkeypatch.setitem(emb._cache, fake.id, HashingEmbedder(32, id=fake.id))
    with pytest.raises(UserError, match="was built with embedder"):
        KnowledgeBase.open("t").search("flu", k=2)


def test_missing_kb_and_bad_names(fake):
    with pytest.raises(UserError, match="medchat kb build"):
        KnowledgeBase.open("nope")
    for bad in ["../x", "a/b", "", ".hidden", "x" * 70]:
        with pytest.raises(UserError, match="invalid knowledge base name"):
            KnowledgeBase.build([DATA / "docs"], bad, embedder=fake)


def test_damaged_manifest_is_a_user_error(docs, fake):
    KnowledgeBase.build([docs], "t", embedder=fake)
    (paths.kb_dir() / "t" / "manifest.json").write_text("{broken")
    with pytest.raises(UserError, match="rebuild it"):
        KnowledgeBase.open("t")


def test_writers_in_two_processes_do_not_lose_changes(docs, fake):
    """Two handles on one KB (as two processes would have): each change starts from the latest."""
    first = KnowledgeBase.build([docs], "t", embedder=fake)
    second = KnowledgeBase.open("t")
    first.add([DATA / "formats" / "diseases.csv"])
    second.remove("asthma.md")
    final = KnowledgeBase.open("t")
    assert "diseases.csv" in final.sources() and "asthma.md" not in final.sources()
    assert first.refresh() and "asthma.md" not in first.sources()


def test_list_kbs_and_info(docs, fake):
    assert [(e["name"], e["built"]) for e in list_kbs()] == [("default", False)]
    KnowledgeBase.build([docs], "zeta", embedder=fake)
    KnowledgeBase.build([DATA / "formats"], "alpha", embedder=fake)
    listed = {e["name"]: e for e in list_kbs()}
    assert set(listed) == {"default", "alpha", "zeta"}
    assert listed["zeta"]["sources"] == 4 and listed["zeta"]["embedder"] == fake.id
    info = KnowledgeBase.open("alpha").info()
    assert info["index"] == "flat" and info["chunks"] == listed["alpha"]["chunks"]
    assert [f["source"] for f in info["files"]] == ["diseases.csv", "page.html", "records.json", "records.jsonl"]


def test_retrieve_thresholds_on_similarity_and_follows_changes(docs, fake):
    base = KnowledgeBase.build([docs], "t", embedder=fake)
    hits = retrieve("kelvaran bark tea", kb="t", k=2, min_score=0.0)
    assert len(hits) == 2 and hits[0].source == "velmora-fever.md"
    assert all(h.similarity >= 0.0 for h in hits)
    strict = retrieve("kelvaran bark tea", kb="t", k=4, min_score=0.99)
    assert all(h.similarity >= 0.99 for h in strict) and len(strict) < 4
    assert retrieve("", kb="t") == []
    base.remove("velmora-fever.md")  # the cached handle notices the change on disk
    assert "velmora-fever.md" not in sources(retrieve("kelvaran bark tea", kb="t", k=4, min_score=-1))


def test_failed_embedding_rolls_the_handle_back(docs, fake, monkeypatch):
    base = KnowledgeBase.build([docs], "t", embedder=fake)
    before = base.info()
    (docs / "asthma.md").write_text("# Asthma\n\n## Treatment\nChanged text.\n")

    def broken(texts, batch_size=64):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(fake, "encode", broken)
    with pytest.raises(RuntimeError):
        base.add([docs])
    assert base.info() == before and KnowledgeBase.open("t").info() == before
    assert len({c.source for c in base.chunks.values()}) == 4  # the old asthma chunks are back


@pytest.mark.parametrize("name", ["notes\n", "notes\nx", "\nnotes", ".hidden", "a" * 65])
def test_kb_names_must_match_in_full(name):
    from kb.store import check_name

    with pytest.raises(UserError, match="invalid knowledge base name"):
        check_name(name)
    assert check_name("notes-1.v2") == "notes-1.v2"
