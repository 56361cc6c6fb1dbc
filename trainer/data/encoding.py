"""Tokenization with the base model's chat template and the loss mask.

Loss mask: labels are -100 on every token that is not part of an assistant reply. A reply's tokens
are found by rendering the conversation up to that reply twice, with the generation prompt
(`<|im_start|>assistant\\n`) and with the reply itself: the tokens between the two ends are the
reply plus its end-of-turn marker, so the model learns to stop. train_on_prompt=True trains on every
token; last_turn_only=True trains only on the final reply.

The template is medchat.core.engine.prompt.template_for(tokenizer, override): the one the chat engine uses
at inference (the tokenizer's own, or the documented fallback for plain base models).

Truncation policy (cutoff_len): a sample keeps its first cutoff_len tokens, so later turns of a long
conversation are cut off and a reply cut mid-way keeps its head (without an end marker). A sample
left with no trained token (its prompt alone fills the budget) is dropped and counted as too long.
Pre-training text gets the EOS token appended and is split into cutoff_len chunks, each its own sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medchat.core.engine.prompt import render_ids, template_for
from medchat.core.errors import UserError

IGNORE = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    source: str = ""

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


@dataclass
class EncodeStats:
    samples: int = 0
    too_long_dropped: int = 0
    truncated: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    notes: list = field(default_factory=list)


def resolve_template(tokenizer, override: str = "") -> str:
    """The chat template text: an override (Jinja text or a file path) or the engine's choice."""
    if override and Path(override).expanduser().is_file():
        override = Path(override).expanduser().read_text(encoding="utf-8")
    return template_for(tokenizer, override)


def encode_chat(tokenizer, template: str, messages: list[dict], train_on_prompt: bool = False,
                last_turn_only: bool = False) -> Encoded:
    """Token ids of a whole conversation (system first) and labels masking non-assistant tokens."""
    ids = render_ids(tokenizer, messages, template, add_generation_prompt=False)
    labels = list(ids) if train_on_prompt else [IGNORE] * len(ids)
    if train_on_prompt:
        return Encoded(ids, labels)
    replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if last_turn_only:
        replies = replies[-1:]
    for i in replies:
        start = len(render_ids(tokenizer, messages[:i], template, add_generation_prompt=True))
        upto = render_ids(tokenizer, messages[: i + 1], template, add_generation_prompt=False)
        if ids[: len(upto)] != upto or start > len(upto):
            raise UserError("the chat template renders earlier turns differently once later turns are added, "
                            "so replies cannot be located; pass --template with a prefix-stable template")
        labels[start: len(upto)] = ids[start: len(upto)]
    return Encoded(ids, labels)


def truncate(enc: Encoded, cutoff_len: int) -> Encoded | None:
    if len(enc) <= cutoff_len:
        return enc
    cut = Encoded(enc.input_ids[:cutoff_len], enc.labels[:cutoff_len], enc.source)
    return cut if cut.trained else None


def encode_text(tokenizer, text: str, cutoff_len: int) -> list[Encoded]:
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = list(ids) + [tokenizer.eos_token_id]
    return [Encoded(ids[i: i + cutoff_len], ids[i: i + cutoff_len]) for i in range(0, len(ids), cutoff_len)
            if len(ids[i: i + cutoff_len]) > 1]


def encode_examples(tokenizer, examples, stage: str, cutoff_len: int, template: str = "",
                    train_on_prompt: bool = False, last_turn_only: bool = False) -> tuple[list[Encoded], EncodeStats]:
    """Encode pt (text) or sft (chat) examples; stats count truncated and dropped samples."""
    stats = EncodeStats()
    out: list[Encoded] = []
    tmpl = resolve_template(tokenizer, template) if stage != "pt" else ""
    for ex in examples:
        if stage == "pt":
            pieces = encode_text(tokenizer, ex.text, cutoff_len)
            stats.truncated += max(0, len(pieces) - 1)
        else:
            enc = encode_chat(tokenizer, tmpl, ex.chat(), train_on_prompt, last_turn_only)
            if len(enc) > cutoff_len:
                stats.truncated += 1
            enc = truncate(enc, cutoff_len)
            if enc is None:
                stats.too_long_dropped += 1
                continue
            pieces = [enc]
        for p in pieces:
            p.source = ex.where if hasattr(ex, "where") else ""
            out.append(p)
            stats.tokens += len(p)
            stats.trained_tokens += p.trained
    stats.samples = len(out)
    if not out:
        raise UserError(f"no sample fits --cutoff-len {cutoff_len} with a trained token; raise --cutoff-len")
    return out, stats
