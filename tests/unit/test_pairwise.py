"""Pairwise preference data: every accepted row form, and clear errors naming file and row."""

import json

import pytest

from medchat.core.errors import UserError
from trainer.data.pairwise import conversation, encode_conversation, load_pairs, pair_prompts

SYS = "You are a doctor."


def _write(path, rows, jsonl=True):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n" if jsonl else json.dumps(rows))
    return path


def test_simple_form_with_system_and_history(tmp_path):
    f = _write(tmp_path / "p.jsonl", [{"prompt": "And now?", "chosen": "good", "rejected": "bad", "system": SYS,
                                       "history": [["I have a cough", "Since when?"]]}])
    (ex,), (info,) = load_pairs(str(f))
    assert conversation(ex, ex.chosen) == [
        {"role": "system", "content": SYS}, {"role": "user", "content": "I have a cough"},
        {"role": "assistant", "content": "Since when?"}, {"role": "user", "content": "And now?"},
        {"role": "assistant", "content": "good"}]
    assert ex.rejected == "bad" and info["rows"] == 1 and len(info["sha256"]) == 64


def test_llamafactory_sharegpt_ranking_form(tmp_path):
    _write(tmp_path / "r.json", [{"conversations": [{"from": "human", "value": "hi"}], "system": SYS,
                                  "chosen": {"from": "gpt", "value": "hello, how can I help"},
                                  "rejected": {"from": "gpt", "value": "go away"}}], jsonl=False)
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": {
        "file_name": "r.json", "ranking": True, "formatting": "sharegpt",
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "system": "system"}}}))
    (ex,), _ = load_pairs("mine", dataset_dir=tmp_path)
    assert ex.chat() == [{"role": "system", "content": SYS}, {"role": "user", "content": "hi"}]
    assert (ex.chosen, ex.rejected) == ("hello, how can I help", "go away")


def test_medicalgpt_forms(tmp_path):
    f = _write(tmp_path / "m.jsonl", [{"conversations": [{"from": "system", "value": SYS},
                                                         {"from": "human", "value": "q"}],
                                       "chosen": "yes", "rejected": "no"}])
    (ex,), _ = load_pairs(str(f))
    assert [m["role"] for m in ex.chat()] == ["system", "user"] and (ex.chosen, ex.rejected) == ("yes", "no")
    old = _write(tmp_path / "old.jsonl", [{"question": "q", "response_chosen": "c", "response_rejected": "r",
                                           "system": SYS, "history": []}])
    (ex,), _ = load_pairs(str(old))
    assert ex.chat() == [{"role": "system", "content": SYS}, {"role": "user", "content": "q"}]
    assert (ex.chosen, ex.rejected) == ("c", "r")


@pytest.mark.parametrize("row, word", [
    ({"prompt": "q", "chosen": "c"}, "rejected"),
    ({"prompt": "q", "rejected": "r", "chosen": "  "}, "chosen"),
    ({"question": "q", "response_chosen": "c"}, "response_rejected"),
])
def test_rows_missing_a_side_name_file_and_row(tmp_path, row, word):
    good = {"prompt": "q", "chosen": "c", "rejected": "r"} if "prompt" in row else \
        {"question": "q", "response_chosen": "c", "response_rejected": "r"}
    f = tmp_path / "prefs.jsonl"
    f.write_text(json.dumps(good) + "\n\n" + json.dumps(row) + "\n")
    with pytest.raises(UserError) as err:
        load_pairs(str(f))
    msg = str(err.value)
    assert "prefs.jsonl row 3" in msg and word in msg
    # --skip-bad keeps the good row and counts the bad one
    pairs, _ = load_pairs(str(f), skip_bad=True)
    assert len(pairs) == 1


def test_sharegpt_row_missing_rejected_is_named(tmp_path):
    f = _write(tmp_path / "s.json", [{"conversations": [{"from": "human", "value": "q"}],
                                      "chosen": {"from": "gpt", "value": "c"}}], jsonl=False)
    with pytest.raises(UserError, match=r"s\.json row 1: missing field 'rejected'"):
        load_pairs(str(f))


def test_sft_only_data_is_refused_for_pairwise(tmp_path):
    with pytest.raises(UserError, match="ranking data"):
        load_pairs("covid_sft")
    with pytest.raises(UserError, match="no preference dataset"):
        load_pairs("")


def test_shipped_samples_load_by_name():
    pairs, infos = load_pairs("covid_pairs")
    ranking, _ = load_pairs(["covid_ranking"])
    assert len(pairs) >= 10 and len(ranking) >= 10 and infos[0]["name"] == "covid_pairs"
    for ex in pairs + ranking:
        assert ex.chat()[-1]["role"] == "user" and ex.chosen != ex.rejected
    both, infos = load_pairs("covid_pairs,covid_pairs_val")
    assert len(both) > len(pairs) and len(infos) == 2
    prompts = pair_prompts(pairs + pairs)
    assert len(prompts) == len(pair_prompts(pairs)) <= len(pairs)
    assert all(p[-1]["role"] == "user" for p in prompts)


def test_encode_conversation_keeps_the_end(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    msgs = [{"role": "user", "content": "fever " * 50}, {"role": "assistant", "content": "Rest."}]
    full = encode_conversation(tok, msgs, tok.chat_template, 4096)
    cut = encode_conversation(tok, msgs, tok.chat_template, 16)
    assert len(cut) == 16 and cut == full[-16:]
