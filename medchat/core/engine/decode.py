"""Token choice and text streaming: sampling (the score steps are in warpers.py), stop markers, incremental
detokenization, tail trim."""

from __future__ import annotations

import re

import torch

from medchat.core.engine import warpers
from medchat.core.settings import GenerationSettings

# Role tags that chat models invent when they run on into a next turn. Matched at a line start.
ROLE_TAG = re.compile(
    r"(?:^|\n)[ \t]*(?:#+[ \t]*)?<?\|?(?:human|user|patient|assistant|doctor|system|instruction|response)\|?>?[ \t]*[:：]?[ \t]*\n"
    r"|<\|?(?:human|user|patient|im_start|im_end|endoftext|eot_id|end)\|?>:?"
    r"|(?:^|\n)[ \t]*(?:#+[ \t]*)?(?:<?(?:human|user|patient)>?)[ \t]*:",
    re.IGNORECASE,
)
_HOLD = 24  # chars held back while they might still turn into a role tag
_SENTENCE_END = re.compile(r"[.!?。！？](?:[\"')\]]*)(?=\s|$)")
TAIL_GUARD = 48  # in the last N tokens of the budget, text after the last sentence end is held back


class Sampler:
    def __init__(self, settings: GenerationSettings, device):
        self.greedy = settings.greedy
        self.steps = warpers.chain(settings)
        self.gen = torch.Generator(device="cpu")
        if settings.seed is not None:
            self.gen.manual_seed(int(settings.seed))
        else:
            self.gen.seed()

    def __call__(self, context_ids: torch.Tensor, logits: torch.Tensor) -> int:
        scores = logits.unsqueeze(0)
        for step in self.steps:
            scores = step(context_ids, scores)
        if self.greedy:
            return int(scores.argmax(-1))
        probs = torch.softmax(scores.float().cpu(), -1)
        return int(torch.multinomial(probs, 1, generator=self.gen))


def stop_token_ids(tokenizer) -> set[int]:
    """EOS plus the template's role-marker special tokens (<|im_start|>, <|eot_id|>…)."""
    ids = set()
    eos = tokenizer.eos_token_id
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    for tok in ("<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|user|>", "<|endoftext|>",
                "<end_of_turn>", "</s>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        # compare names, not "!= unk id": <|endoftext|> is often the unk token too and must still stop
        if isinstance(tid, int) and tid >= 0 and tokenizer.convert_ids_to_tokens(tid) == tok:
            ids.add(tid)
    return ids


class TextStream:
    """Turns generated ids into safe-to-show text deltas.

    Holds back an incomplete UTF-8 sequence, a tail that may become a role tag, and (near the token
    budget) the unfinished sentence, which is dropped if the budget then cuts the reply.
    """

    def __init__(self, tokenizer, lead_ids: list[int] = ()):
        """`lead_ids`: the reply's first tokens, given rather than generated; the caller shows them."""
        self.tok = tokenizer
        self.ids: list[int] = list(lead_ids)
        self.text = tokenizer.decode(self.ids, skip_special_tokens=True) if self.ids else ""
        self.emitted = len(self.text)
        self.stopped_by_marker = False

    def push(self, token_id: int, near_budget: bool) -> str:
        self.ids.append(token_id)
        text = self.tok.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        m = ROLE_TAG.search(text, max(0, self.emitted - _HOLD))
        if m:
            self.text = text[:m.start()].rstrip()
            self.stopped_by_marker = True
            return self._emit_upto(len(self.text))
        self.text = text
        safe = max(self.emitted, len(text) - _HOLD) if _might_start_tag(text) else len(text)
        if near_budget:
            ends = list(_SENTENCE_END.finditer(text, self.emitted))
            safe = min(safe, ends[-1].end() if ends else self.emitted)
        return self._emit_upto(safe)

    def finish(self, cut_by_length: bool) -> str:
        """Flush what was held back; drop a dangling sentence if the token limit cut the reply."""
        if cut_by_length:
            ends = list(_SENTENCE_END.finditer(self.text))
            if ends and ends[-1].end() >= self.emitted:
                self.text = self.text[:ends[-1].end()]
        self.text = self.text.rstrip()
        return self._emit_upto(len(self.text))

    def _emit_upto(self, n: int) -> str:
        n = max(n, self.emitted)
        out = self.text[self.emitted:n] if n <= len(self.text) else self.text[self.emitted:]
        self.emitted += len(out)
        return out


def _might_start_tag(text: str) -> bool:
    tail = ("\n" + text)[-_HOLD:]  # the reply's start is a line start too ("User:" as first words)
    return "\n" in tail or "<" in tail or "#" in tail
