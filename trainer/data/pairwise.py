"""Pairwise preference data for rm / dpo (and PPO prompts): a conversation, a chosen and a rejected reply.

Parsing is the shared loader's (`trainer.data.load_dataset_rows(stage="rm")`), which reads
LLaMA-Factory ranking entries (alpaca or sharegpt with `chosen`/`rejected` turns), MedicalGPT-style
rows (`conversations` + `chosen`/`rejected` strings) and the simple {prompt, chosen, rejected,
system?, history?} form, and names file and row for a bad one. This module adds the older
MedicalGPT reward layout {question, response_chosen, response_rejected, system?, history?}
(auto-detected for direct paths) and the helpers the preference stages share.
"""

from __future__ import annotations

import json
from pathlib import Path

from medchat.core.errors import UserError
from trainer.data import DatasetSpec, Example, load_dataset_rows, resolve
from trainer.data.loaders import read_rows

__all__ = ["load_pairs", "conversation", "pair_prompts", "encode_conversation", "Example"]


def _medicalgpt_spec(spec: str, dataset_dir=None) -> DatasetSpec | None:
    """A DatasetSpec for a direct file in the question/response_chosen/response_rejected layout."""
    path = Path(spec).expanduser()
    if not path.is_file():
        if not dataset_dir or not (Path(dataset_dir) / spec).is_file():
            return None
        path = Path(dataset_dir) / spec
    if path.suffix.lower() not in (".json", ".jsonl"):
        return None
    rows = read_rows(path)
    first = rows[0][1] if rows else {}
    if not isinstance(first, dict) or not ({"response_chosen", "response_rejected"} & set(first)):
        return None
    prompt = next((k for k in ("question", "prompt", "instruction") if k in first), "question")
    columns = {"prompt": prompt, "query": None, "chosen": "response_chosen", "rejected": "response_rejected",
               "system": "system" if "system" in first else None,
               "history": "history" if "history" in first else None}
    return DatasetSpec(name=path.stem, path=path.resolve(), formatting="alpaca", ranking=True, columns=columns)


def load_pairs(specs, dataset_dir=None, skip_bad: bool = False, max_samples: int = 0
               ) -> tuple[list[Example], list[dict]]:
    """(examples with .chosen/.rejected, manifest infos) for dataset names or paths (list or 'a,b')."""
    if isinstance(specs, str):
        specs = [s.strip() for s in specs.split(",") if s.strip()]
    if not specs:
        raise UserError("no preference dataset given; pass --dataset NAME_OR_PATH with chosen/rejected pairs "
                        "(e.g. --dataset covid_pairs)")
    examples, infos = [], []
    for spec in specs:
        ds = _medicalgpt_spec(spec, dataset_dir) or resolve(spec, dataset_dir)
        if ds.formatting == "auto":  # a direct file: read it as pairs even if its first row lacks a side
            ds.ranking = True
        rows = load_dataset_rows(ds, dataset_dir, stage="rm", skip_bad=skip_bad, max_samples=max_samples)
        examples += rows
        infos.append(rows.info)
    return examples, infos


def conversation(ex: Example, reply: str) -> list[dict]:
    """The prompt conversation (system first) followed by `reply` as the assistant turn."""
    return [*ex.chat(), {"role": "assistant", "content": reply}]


def pair_prompts(examples: list[Example]) -> list[list[dict]]:
    """The distinct prompt conversations (system first, ending with a user turn)."""
    seen, out = set(), []
    for ex in examples:
        msgs = ex.chat()
        if msgs and msgs[-1]["role"] == "assistant":  # chat data: roll out on the prompt only
            msgs = msgs[:-1]
        key = json.dumps(msgs, sort_keys=True)
        if msgs and key not in seen:
            seen.add(key)
            out.append(msgs)
    return out


def encode_conversation(tokenizer, messages: list[dict], template: str, max_len: int = 1024) -> list[int]:
    """Token ids of a whole conversation (no generation prompt), keeping its end when too long:
    a reward is read at the last token, so the reply must survive truncation."""
    from medchat.core.engine.prompt import render_ids

    ids = render_ids(tokenizer, messages, template, add_generation_prompt=False)
    return ids[-max_len:]
