"""Keep KB passages from opening chat turns: break special-token strings so they stay plain text.

A chat template renders role boundaries as special tokens (`<|im_start|>system`). A document that
contains such a string would otherwise tokenize to the real token and start a turn of its own. We
insert a zero-width space after the first character of each marker, so the text still reads the
same but no longer matches any special or added token.
"""

from __future__ import annotations

import re
from functools import lru_cache

BREAK = "\u200b"  # zero-width space

# Role markers of common chat templates, broken even when the engine's tokenizer is not known.
ROLE_MARKERS = ("<|im_start|>", "<|im_end|>", "<|system|>", "<|user|>", "<|assistant|>", "[INST]", "[/INST]",
                "<s>", "</s>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|begin_of_text|>", "<|end_of_text|>", "<start_of_turn>", "<end_of_turn>")


def tokenizer_markers(tokenizer) -> tuple[str, ...]:
    """The tokenizer's special and added tokens (strings of 2+ characters; one character cannot be broken)."""
    if tokenizer is None:
        return ()
    found: set[str] = set()
    try:
        found.update(getattr(tokenizer, "all_special_tokens", None) or ())
        found.update(getattr(tokenizer, "added_tokens_encoder", None) or {})
        decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
        found.update(getattr(t, "content", str(t)) for t in decoder.values())
    except Exception:  # noqa: BLE001 - an odd tokenizer still gets the fixed list
        pass
    return tuple(sorted(t for t in found if isinstance(t, str) and len(t) > 1))


@lru_cache(maxsize=8)
def _pattern(markers: tuple[str, ...]) -> re.Pattern:
    # longest first, so `<|im_start|>` wins over any shorter token it contains
    ordered = sorted(set(markers), key=len, reverse=True)
    return re.compile("|".join(re.escape(m) for m in ordered))


def neutralise(text: str, extra: tuple[str, ...] = ()) -> str:
    """`text` with every role marker and every string in `extra` broken by a zero-width space."""
    if not text:
        return text
    return _pattern(tuple(ROLE_MARKERS) + tuple(extra)).sub(lambda m: m[0][0] + BREAK + m[0][1:], text)
