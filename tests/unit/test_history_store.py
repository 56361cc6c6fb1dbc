"""History store: conversations, messages, metadata, titles, search and export."""

from __future__ import annotations

import json
import threading

import pytest

from medchat.core import paths
from medchat.core.errors import UserError
from medchat.app.history import HistoryStore
from medchat.app.history.store import query_terms


@pytest.fixture
def store():
    s = HistoryStore()
    yield s
    s.close()


def test_default_path_is_under_medchat_home(store, medchat_home):
    assert store.path == paths.history_db()
    assert store.path.parent == medchat_home and store.path.exists()


def test_messages_keep_order_and_metadata(store):
    cid = store.new_conversation(profile="covid-sft", system_prompt="be brief")
    u = store.add_message(cid, "user", "My throat hurts", profile="covid-sft")
    meta = {
        "profile": "covid-sft",
        "profile_chain": ["covid-sft"],
        "settings": {"temperature": 0.2, "seed": None},
        "sources": [{"title": "Sore throat", "score": 0.8}],
        "timings": {"ttft_s": 0.12, "tokens": 40},
        "triage": None,
    }
    a = store.add_message(cid, "assistant", "Rest and fluids.", **meta)
    msgs = store.messages(cid)
    assert [m["id"] for m in msgs] == [u, a]
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    got = msgs[1]
    for key, value in meta.items():
        assert got[key] == value
    assert got["status"] == "complete" and got["conversation_id"] == cid


def test_update_and_delete_message(store):
    cid = store.new_conversation()
    store.add_message(cid, "user", "question")
    mid = store.add_message(cid, "assistant", "", status="partial")
    store.update_message(mid, content="half an ans")
    assert store.messages(cid)[1]["status"] == "partial"
    store.update_message(mid, content="half an answer", status="cancelled", timings={"tokens": 3})
    msg = store.messages(cid)[1]
    assert (msg["content"], msg["status"], msg["timings"]) == ("half an answer", "cancelled", {"tokens": 3})
    store.delete_message(mid)
    store.delete_message(mid)  # already gone: not an error
    assert [m["role"] for m in store.messages(cid)] == ["user"]
    with pytest.raises(UserError):
        store.update_message(mid, content="late token")


def test_bad_arguments_are_rejected(store):
    cid = store.new_conversation()
    with pytest.raises(ValueError):
        store.add_message(cid, "doctor", "hi")
    with pytest.raises(ValueError):
        store.add_message(cid, "user", "hi", status="done")
    with pytest.raises(TypeError):
        store.add_message(cid, "user", "hi", mood="happy")
    assert store.messages(cid) == []


def test_unknown_conversation_names_the_list_command(store):
    for call in (lambda: store.messages(999), lambda: store.add_message(999, "user", "x"),
                 lambda: store.set_title(999, "t"), lambda: store.export(999, "md", store.path.parent / "x.md")):
        with pytest.raises(UserError, match="medchat history list"):
            call()


def test_auto_title_listing_and_last_conversation(store):
    assert store.last_conversation() is None and store.conversations() == []
    first = store.new_conversation()
    store.add_message(first, "system", "system text is not a title")
    store.add_message(first, "user", "\n  What helps a   migraine?\nMore detail " + "x" * 200)
    store.add_message(first, "user", "second question does not retitle")
    second = store.new_conversation(title="Named by me")
    store.add_message(second, "user", "Is 38.2 a fever?")
    long_one = store.new_conversation()
    store.add_message(long_one, "user", "word " * 40)

    listed = store.conversations()
    assert [c["id"] for c in listed] == [long_one, second, first]
    by_id = {c["id"]: c for c in listed}
    assert by_id[first]["title"] == "What helps a migraine?"
    assert by_id[first]["message_count"] == 3
    assert by_id[first]["preview"].startswith("What helps a migraine?")
    assert by_id[second]["title"] == "Named by me"
    assert len(by_id[long_one]["title"]) <= 60 and by_id[long_one]["title"].endswith("…")
    assert store.conversations(limit=2)[1]["id"] == second

    store.add_message(first, "assistant", "Rest in a dark room.")  # activity moves it to the top
    assert store.last_conversation()["id"] == first
    store.set_title(first, "Migraine")
    assert store.conversation(first)["title"] == "Migraine"


def test_search_finds_old_messages_and_survives_any_query(store):
    old = store.new_conversation()
    store.add_message(old, "user", "My knee is swollen after running (left knee).")
    store.add_message(old, "assistant", "Rest, ice and \"compression\" help; 胸口痛 is unrelated.")
    for i in range(30):
        cid = store.new_conversation()
        store.add_message(cid, "user", f"filler question number {i} about sleep")

    def ids(q):
        return [hit["message_id"] for hit in store.search(q)]

    knee = store.messages(old)[0]["id"]
    answer = store.messages(old)[1]["id"]
    assert ids("swollen knee") == [knee]
    assert ids("KNEE") == [knee]
    assert ids('"left knee"') == [knee]
    assert ids("(left knee).") == [knee]
    assert ids('"compression"') == [answer]
    assert ids("胸口痛") == [answer]
    assert ids("胸口") == [answer]  # shorter than a trigram: falls back to a substring scan
    assert ids('knee "running') == [knee]
    assert len(ids("sleep")) == 20 and len(store.search("sleep", limit=5)) == 5
    hit = store.search("swollen")[0]
    assert hit["conversation_id"] == old and "swollen" in hit["snippet"]
    assert hit["title"] == hit["conversation_title"] == store.conversation(old)["title"]
    for nasty in ['"', "'", "*", "AND", "NOT OR", "NEAR(a b)", "knee*", "-knee", "col:knee", "a\"b", "%", "_",
                  "'; DROP TABLE messages; --", "(((", "^", "", "   "]:
        assert isinstance(store.search(nasty), list)
    assert ids("%") == [] and ids("_") == []
    assert ids("knee") == [knee], "messages survived the nasty queries"


def test_search_follows_updates_and_deletes(store):
    cid = store.new_conversation()
    mid = store.add_message(cid, "assistant", "", status="partial")
    store.update_message(mid, content="drink plenty of water")
    assert [h["message_id"] for h in store.search("plenty")] == [mid]
    store.update_message(mid, content="take paracetamol")
    assert store.search("plenty") == [] and len(store.search("paracetamol")) == 1
    store.delete_message(mid)
    assert store.search("paracetamol") == []
    assert store.integrity_ok()


def test_query_terms():
    assert query_terms('  "chest  pain" fever?  ') == ["chest pain", "fever"]
    assert query_terms("胸口痛，发烧") == ["胸口痛", "发烧"]
    assert query_terms('??? "" ,,') == []


def test_export_markdown_and_json(store, tmp_path):
    out = tmp_path / "exports"
    out.mkdir()
    cid = store.new_conversation(title="Knee pain", profile="base", system_prompt="Be careful.")
    store.add_message(cid, "user", "My knee hurts")
    store.add_message(cid, "assistant", "Try rest.", status="partial", sources=[{"title": "Knee guide"}],
                      triage={"category": "bleeding", "guidance": "Press on the wound."})
    md = store.export(cid, "md", out / "out.md")
    text = md.read_text(encoding="utf-8")
    assert md == out / "out.md"
    assert text.startswith("# Knee pain")
    assert text.index("My knee hurts") < text.index("Try rest.")
    assert "(partial)" in text and "Knee guide" in text and "Press on the wound." in text

    js = store.export(cid, "JSON", out)  # a directory: the file is named for the conversation
    data = json.loads(js.read_text(encoding="utf-8"))
    assert js.parent == out and js.suffix == ".json"
    assert data["conversation"]["id"] == cid and data["conversation"]["title"] == "Knee pain"
    assert [m["content"] for m in data["messages"]] == ["My knee hurts", "Try rest."]
    assert data["messages"][1]["sources"] == [{"title": "Knee guide"}]
    assert sorted(p.name for p in out.iterdir()) == sorted(["out.md", js.name]), "no temp files left"

    with pytest.raises(UserError, match="md"):
        store.export(cid, "pdf", out / "x.pdf")
    assert not (out / "x.pdf").exists()


def test_ui_and_worker_threads_share_one_store(store):
    cid = store.new_conversation()
    errors = []

    def worker(tag):
        try:
            mid = store.add_message(cid, "assistant", "", status="partial")
            for i in range(40):
                store.update_message(mid, content=f"{tag} {i}")
            store.update_message(mid, status="complete")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def ui():
        try:
            for i in range(40):
                store.add_message(cid, "user", f"ui {i}")
                store.conversations()
                store.search("ui")
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in ("w1", "w2")] + [threading.Thread(target=ui)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    msgs = store.messages(cid)
    assert len(msgs) == 42
    assert sorted(m["content"] for m in msgs if m["role"] == "assistant") == ["w1 39", "w2 39"]
    assert store.integrity_ok()


def test_closed_store_refuses_calls(store):
    store.close()
    store.close()
    with pytest.raises(RuntimeError):
        store.conversations()


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_state_dir_and_database_files_are_private(medchat_home):
    medchat_home.mkdir(parents=True, exist_ok=True)
    medchat_home.chmod(0o755)  # as an older medchat left it
    with HistoryStore() as store:
        store.add_message(store.new_conversation(), "user", "my private symptom")
        assert _mode(paths.home()) == 0o700
        for name in ("history.db", "history.db-wal", "history.db-shm"):
            assert _mode(medchat_home / name) == 0o600, name


def _raw_bytes(store) -> bytes:
    return b"".join(p.read_bytes() for p in store.path.parent.glob(store.path.name + "*"))


def test_delete_conversation_leaves_no_trace(store):
    gone = store.new_conversation()
    store.add_message(gone, "user", "zebrafishrash secret")
    kept = store.new_conversation()
    store.add_message(kept, "user", "a cough that stays")
    assert b"zebrafishrash" in _raw_bytes(store)
    store.delete_conversation(gone)
    assert [c["id"] for c in store.conversations()] == [kept]
    assert store.search("zebrafishrash") == [] and store.search("cough")
    assert b"zebrafishrash" not in _raw_bytes(store)  # secure_delete + index merge + WAL checkpoint
    assert store.integrity_ok()
    with pytest.raises(UserError, match="no conversation with id"):
        store.delete_conversation(gone)


@pytest.mark.parametrize("huge", [2**63, -(2**63) - 1, 10**19])
def test_an_id_too_big_for_sqlite_is_no_conversation(store, huge):
    with pytest.raises(UserError, match=f"no conversation with id {huge}"):
        store.messages(huge)


def test_purge_all_or_before_a_date(store):
    old, new = store.new_conversation(), store.new_conversation()
    for cid in (old, new):
        store.add_message(cid, "user", f"message {cid}")
    store._conn.execute("UPDATE conversations SET updated = '2020-01-01T00:00:00+00:00' WHERE id = ?", (old,))
    assert store.purge(before="2021-01-01T00:00:00+00:00") == 1
    assert [c["id"] for c in store.conversations()] == [new]
    assert store.purge() == 1 and store.conversations() == []
    assert store.search("message") == []


def test_move_to_end_keeps_the_message_once_and_searchable(store):
    cid = store.new_conversation()
    queued = store.add_message(cid, "user", "typed while busy about mpox")
    store.add_message(cid, "assistant", "the earlier reply")
    new_id = store.move_to_end(queued)
    assert new_id != queued
    assert [m["content"] for m in store.messages(cid)] == ["the earlier reply", "typed while busy about mpox"]
    assert store.move_to_end(new_id) == new_id  # already last: unchanged
    assert [h["content"] for h in store.search("mpox")] == ["typed while busy about mpox"]


def test_move_to_end_into_another_conversation_removes_the_emptied_one(store):
    pending = store.new_conversation()
    queued = store.add_message(pending, "user", "typed while the model loaded")
    target = store.new_conversation()
    store.add_message(target, "user", "an earlier question")
    store.move_to_end(queued, target)
    assert [m["content"] for m in store.messages(target)] == ["an earlier question", "typed while the model loaded"]
    assert [c["id"] for c in store.conversations()] == [target]
    with pytest.raises(UserError, match="no message with id"):
        store.move_to_end(queued)
