"""Training datasets in every layout the trainer reads: success or one UserError line, never a traceback."""

from __future__ import annotations

import csv
import io
import json

from hypothesis import given
from hypothesis import strategies as st
from tests.adversarial.strategies import as_bytes, clean, fast, json_values, mixed_text, records, scratch, tally

from trainer.data import load_dataset_rows
from trainer.data.formats import Example

STAGES = st.sampled_from(["sft", "pt", "rm", "dpo", "ppo"])


def _load(path, stage, skip_bad=False):
    rows = clean(load_dataset_rows, str(path), stage=stage, skip_bad=skip_bad)
    if not isinstance(rows, Exception):
        assert rows and all(isinstance(ex, Example) for ex in rows)
        for ex in rows:  # what the trainer gets is text, never a stray dict or number
            assert isinstance(ex.text, str) and isinstance(ex.system, str)
            assert all(isinstance(m["content"], str) and m["role"] in ("user", "assistant") for m in ex.messages)
    return rows


message = st.fixed_dictionaries({}, optional={"from": st.sampled_from(["human", "gpt", "system", "robot"]) | mixed_text,
                                              "value": json_values, "role": st.sampled_from(["user", "assistant"]),
                                              "content": json_values})
sharegpt = st.fixed_dictionaries({"conversations": st.lists(message | json_values, max_size=5)},
                                 optional={"system": json_values, "chosen": json_values | message,
                                           "rejected": json_values | message})
alpaca = st.fixed_dictionaries({"instruction": json_values, "output": json_values},
                               optional={"input": json_values, "system": json_values, "history": json_values})
pairs = st.fixed_dictionaries({"prompt": json_values, "chosen": json_values, "rejected": json_values},
                              optional={"input": json_values, "history": json_values, "question": json_values})
text_rows = st.fixed_dictionaries({"text": json_values})
rows = st.lists(st.one_of(sharegpt, alpaca, pairs, text_rows, records, json_values), max_size=5)


@fast(60)
@given(rows=rows, stage=STAGES, skip_bad=st.booleans(), as_lines=st.booleans())
def test_json_and_jsonl_rows_of_any_shape(rows, stage, skip_bad, as_lines):
    tally("datasets")
    with scratch() as d:
        if as_lines:
            path = d / "data.jsonl"
            path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
        else:
            path = d / "data.json"
            path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        _load(path, stage, skip_bad)


@fast(40)
@given(data=json_values, stage=STAGES)
def test_json_file_holding_any_value(data, stage):
    tally("datasets")
    with scratch() as d:
        path = d / "data.json"
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        _load(path, stage)


@fast(50)
@given(raw=as_bytes(mixed_text), ext=st.sampled_from([".json", ".jsonl", ".txt", ".csv", ".parquet"]), stage=STAGES)
def test_random_bytes_in_each_file_type(raw, ext, stage):
    tally("datasets")
    with scratch() as d:
        path = d / f"data{ext}"
        path.write_bytes(raw)
        _load(path, stage)


@fast(40)
@given(header=st.lists(st.sampled_from(["instruction", "input", "output", "prompt", "chosen", "rejected", "text"])
                       | mixed_text, min_size=1, max_size=4),
       body=st.lists(st.lists(mixed_text, max_size=5), max_size=4), stage=STAGES)
def test_csv_with_ragged_rows(header, body, stage):
    tally("datasets")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(body)
    with scratch() as d:
        path = d / "data.csv"
        path.write_text(buf.getvalue(), encoding="utf-8")
        _load(path, stage, skip_bad=True)


@fast(30)
@given(text=mixed_text, stage=st.sampled_from(["pt", "sft"]))
def test_plain_text_for_pretraining(text, stage):
    tally("datasets")
    with scratch() as d:
        path = d / "corpus.txt"
        path.write_text(text, encoding="utf-8")
        _load(path, stage)
