"""trainer.data: LLaMA-Factory registry, format auto-detection, file types, bad-row errors."""

import json

import pytest

from medchat.core.errors import UserError
from trainer.data import load_dataset_rows, load_datasets, resolve
from trainer.data.registry import SAMPLES_DIR

SYS = "You are a careful doctor."


def _write(path, rows, kind="json"):
    if kind == "json":
        path.write_text(json.dumps(rows))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def lf_dir(tmp_path):
    """A LLaMA-Factory style data folder with alpaca, sharegpt (custom tags) and ranking entries."""
    _write(tmp_path / "alp.json", [
        {"q": "I have a cough.", "ctx": "It started 2 days ago.", "a": "Rest and drink fluids.", "sys": SYS,
         "hist": [["Hello", "Hi, how can I help?"]]},
        {"q": "Is a fever of 38 C bad?", "ctx": "", "a": "It is a mild fever; rest.", "sys": "", "hist": []}])
    _write(tmp_path / "sg.jsonl", [
        {"dialog": [{"speaker": "sys", "text": SYS}, {"speaker": "patient", "text": "My throat hurts."},
                    {"speaker": "doc", "text": "It often settles in a week."},
                    {"speaker": "patient", "text": "And if not?"}, {"speaker": "doc", "text": "See a doctor."}]}],
        kind="jsonl")
    _write(tmp_path / "rank.json", [
        {"conversations": [{"from": "human", "value": "Chest pain and sweating?"}],
         "chosen": {"from": "gpt", "value": "Call emergency services now."},
         "rejected": {"from": "gpt", "value": "Probably nothing."}}])
    _write(tmp_path / "pairs.jsonl", [{"instruction": "Can I take ibuprofen?", "chosen": "Usually yes; read the label.",
                                       "rejected": "Take as many as you like."}], kind="jsonl")
    info = {
        "alp": {"file_name": "alp.json", "columns": {"prompt": "q", "query": "ctx", "response": "a", "system": "sys",
                                                      "history": "hist"}},
        "sg": {"file_name": "sg.jsonl", "formatting": "sharegpt", "columns": {"messages": "dialog"},
               "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "patient",
                        "assistant_tag": "doc", "system_tag": "sys"}},
        "rank": {"file_name": "rank.json", "formatting": "sharegpt", "ranking": True,
                 "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
        "pairs": {"file_name": "pairs.jsonl", "ranking": True,
                  "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}},
        "remote": {"hf_hub_url": "someone/data"},
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    return tmp_path


def test_alpaca_entry_with_columns_history_and_system(lf_dir):
    rows = load_dataset_rows("alp", lf_dir, "sft")
    first = rows[0]
    assert first.system == SYS
    assert [m["role"] for m in first.messages] == ["user", "assistant", "user", "assistant"]
    assert first.messages[2]["content"] == "I have a cough.\nIt started 2 days ago."
    assert rows[1].messages == [{"role": "user", "content": "Is a fever of 38 C bad?"},
                                {"role": "assistant", "content": "It is a mild fever; rest."}]
    assert rows.info["rows"] == 2 and len(rows.info["sha256"]) == 64 and first.row == 1


def test_sharegpt_entry_with_custom_tags(lf_dir):
    (ex,) = load_dataset_rows("sg", lf_dir, "sft")
    assert ex.system == SYS and ex.chat()[0] == {"role": "system", "content": SYS}
    assert [m["content"] for m in ex.messages] == ["My throat hurts.", "It often settles in a week.",
                                                   "And if not?", "See a doctor."]


def test_ranking_entries_sharegpt_and_alpaca(lf_dir):
    (r,) = load_dataset_rows("rank", lf_dir, "dpo")
    assert r.messages == [{"role": "user", "content": "Chest pain and sweating?"}]
    assert (r.chosen, r.rejected) == ("Call emergency services now.", "Probably nothing.")
    (p,) = load_dataset_rows("pairs", lf_dir, "rm")
    assert p.messages[-1]["content"] == "Can I take ibuprofen?" and p.rejected.startswith("Take as many")
    with pytest.raises(UserError, match="ranking data"):
        load_dataset_rows("alp", lf_dir, "dpo")
    ppo = load_dataset_rows("alp", lf_dir, "ppo")  # prompts only
    assert ppo[0].messages[-1]["role"] == "user"


def test_remote_and_unknown_entries_are_refused(lf_dir):
    with pytest.raises(UserError, match="offline"):
        load_dataset_rows("remote", lf_dir, "sft")
    with pytest.raises(UserError, match="unknown dataset 'nope'"):
        resolve("nope", lf_dir)


def test_shipped_samples_are_the_default_registry():
    rows = load_dataset_rows("covid_sft", None, "sft", max_samples=5)
    assert len(rows) == 5 and rows.info["name"] == "covid_sft"
    assert all(ex.messages[-1]["role"] == "assistant" for ex in rows)
    assert resolve("covid_sharegpt").path.parent == SAMPLES_DIR


def test_auto_detected_direct_files(tmp_path):
    doc = _write(tmp_path / "chatdoctor.json", [
        {"instruction": "If you are a doctor, please answer.", "input": f"Patient {i}: my head hurts.",
         "output": f"Answer {i}: rest and hydrate."} for i in range(3)])
    ex = load_dataset_rows(doc, None, "sft")[0]
    assert ex.system == "If you are a doctor, please answer." and ex.messages[0]["content"] == "Patient 0: my head hurts."

    mg = _write(tmp_path / "medicalgpt.jsonl", [{"conversations": [{"from": "human", "value": "Hi"},
                                                                   {"from": "gpt", "value": "Hello."}]}], "jsonl")
    assert load_dataset_rows(mg, None, "sft")[0].messages[1] == {"role": "assistant", "content": "Hello."}

    msgs = _write(tmp_path / "msgs.json", [{"messages": [{"role": "system", "content": SYS},
                                                         {"role": "user", "content": "Q"},
                                                         {"role": "assistant", "content": "A"}]}])
    ex = load_dataset_rows(msgs, None, "sft")[0]
    assert ex.system == SYS and len(ex.messages) == 2

    txt = tmp_path / "corpus.txt"
    txt.write_text("Fever is a raised temperature.\nIt is common.\n\nCoughs clear airways.\n")
    rows = load_dataset_rows(txt, None, "pt")
    assert [r.text for r in rows] == ["Fever is a raised temperature.\nIt is common.", "Coughs clear airways."]
    assert [r.row for r in rows] == [1, 4]
    jl = _write(tmp_path / "corpus.jsonl", [{"text": "one"}, {"text": "two"}], "jsonl")
    assert [r.text for r in load_dataset_rows(jl, None, "pt")] == ["one", "two"]
    with pytest.raises(UserError, match="--stage pt"):
        load_dataset_rows(jl, None, "sft")


def test_csv_and_parquet(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"instruction": ["Q1", "Q2"], "input": ["", "more"], "output": ["A1", "A2"]})
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        rows = load_dataset_rows(tmp_path / name, None, "sft")
        assert rows[1].messages[0]["content"] == "Q2\nmore" and rows[1].messages[1]["content"] == "A2"


def test_pt_on_chat_data_flattens_text():
    rows = load_dataset_rows("covid_sft", None, "pt", max_samples=2)
    assert rows[0].text and rows[0].messages == []


@pytest.mark.parametrize("rows, needle", [
    ([{"instruction": "Q", "input": ""}], "missing field 'output'"),
    ([{"instruction": "Q", "input": "", "output": "   "}], "empty reply"),
    ([{"conversations": [{"from": "gpt", "value": "A"}, {"from": "human", "value": "Q"}]}], "wrong role order"),
    ([{"conversations": [{"from": "human", "value": "Q"}, {"from": "human", "value": "Q2"}]}], "wrong role order"),
    ([{"conversations": [{"from": "human", "value": "Q"}]}], "does not end with an assistant reply"),
])
def test_bad_rows_name_file_and_row(tmp_path, rows, needle):
    good = {"instruction": "Fine", "input": "", "output": "Fine."} if "instruction" in rows[0] else \
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}
    path = _write(tmp_path / "bad.json", [good, good, *rows])
    with pytest.raises(UserError) as err:
        load_dataset_rows(path, None, "sft")
    msg = str(err.value)
    assert str(path) in msg and "row 3" in msg and needle in msg and "--skip-bad" in msg
    skipped = load_dataset_rows(path, None, "sft", skip_bad=True)
    assert len(skipped) == 2 and len(skipped.skipped) == 1 and "row 3" in skipped.skipped[0]


def test_unreadable_files(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(UserError, match=r"broken.jsonl line 2: invalid JSON"):
        load_dataset_rows(broken, None, "pt")
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserError, match="bin.json"):
        load_dataset_rows(binary, None, "sft")
    with pytest.raises(UserError, match="no dataset given"):
        load_datasets([], None, "sft")
