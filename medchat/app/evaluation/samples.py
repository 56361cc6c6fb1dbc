"""Evaluation samples from any dataset the trainer reads: the reference is the last assistant turn,
the prompt is everything before it (the row's system prompt included)."""

from __future__ import annotations

from dataclasses import dataclass

from medchat.core.errors import UserError


@dataclass
class Sample:
    prompt: list[dict]  # chat messages, ending with the user turn to answer
    reference: str
    where: str = ""  # "<file> row N"


def read_dataset(spec: str, dataset_dir: str | None, limit: int, skip_bad: bool):
    """The trainer's loader (registry names, alpaca, sharegpt, ChatDoctor JSON, MedicalGPT jsonl...)."""
    from trainer.data import load_dataset_rows

    return load_dataset_rows(spec, dataset_dir, stage="sft", skip_bad=skip_bad, max_samples=limit)


def load_samples(spec: str, dataset_dir: str | None = None, limit: int | None = None, skip_bad: bool = False,
                 system: str | None = None) -> tuple[list[Sample], dict]:
    """(samples, dataset info for the report). `system` is added to rows that have no system prompt."""
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be a positive number of samples, got {limit}")
    try:
        rows = read_dataset(spec, dataset_dir, limit or 0, skip_bad)
    except UserError as exc:
        if "no usable rows" in str(exc):  # the trainer words it for training; say what eval needs
            raise UserError(f"dataset '{spec}' has no samples to evaluate: eval needs conversations that end "
                            f"with an assistant reply ({exc})") from None
        raise
    samples = []
    for ex in rows:
        messages = ex.chat()
        if not messages or messages[-1]["role"] != "assistant":
            continue
        prompt = [dict(m) for m in messages[:-1]]
        if system and not any(m["role"] == "system" for m in prompt):
            prompt.insert(0, {"role": "system", "content": system})
        samples.append(Sample(prompt=prompt, reference=messages[-1]["content"], where=ex.where))
    if not samples:
        raise UserError(f"dataset '{spec}' has no samples to evaluate (no conversation ends with an assistant reply)")
    info = dict(getattr(rows, "info", {}) or {})
    info["samples"] = len(samples)
    info["skipped"] = len(getattr(rows, "skipped", []) or [])
    return samples, info
