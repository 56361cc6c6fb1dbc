"""Loss mask: labels are -100 exactly on non-assistant tokens; options and truncation policy."""

import pytest

from trainer.data.encoding import IGNORE, encode_chat, encode_examples, encode_text, resolve_template
from trainer.data.formats import Example
from trainer.modeling import load_tokenizer

CONV = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I have a fever."}, {"role": "assistant", "content": "Drink fluids and rest."},
        {"role": "user", "content": "And a cough?"}, {"role": "assistant", "content": "See a doctor if it gets worse."}]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def _trained_text(tok, enc):
    """Decoded runs of trained tokens."""
    runs, cur = [], []
    for i, lab in zip(enc.input_ids, enc.labels):
        if lab != IGNORE:
            cur.append(i)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs


def test_labels_cover_exactly_the_assistant_replies(tok):
    enc = encode_chat(tok, resolve_template(tok), CONV)
    assert len(enc.labels) == len(enc.input_ids)
    assert all(lab in (IGNORE, i) for i, lab in zip(enc.input_ids, enc.labels))
    assert _trained_text(tok, enc) == ["Drink fluids and rest.<|im_end|>\n", "See a doctor if it gets worse.<|im_end|>\n"]
    # every untrained token belongs to the system/user turns or the role headers
    untrained = tok.decode([i for i, lab in zip(enc.input_ids, enc.labels) if lab == IGNORE])
    assert "Drink" not in untrained and "I have a fever." in untrained and "<|im_start|>assistant" in untrained


def test_train_on_prompt_and_last_turn_only(tok):
    tmpl = resolve_template(tok)
    everything = encode_chat(tok, tmpl, CONV, train_on_prompt=True)
    assert everything.labels == everything.input_ids
    last = encode_chat(tok, tmpl, CONV, last_turn_only=True)
    assert _trained_text(tok, last) == ["See a doctor if it gets worse.<|im_end|>\n"]


def test_truncation_keeps_the_head_and_drops_prompt_only_samples(tok):
    ex = Example(messages=CONV[1:], system="Be brief.")
    full = encode_chat(tok, resolve_template(tok), ex.chat())
    first_label = next(i for i, lab in enumerate(full.labels) if lab != IGNORE)
    cut, stats = encode_examples(tok, [ex], "sft", cutoff_len=first_label + 3)
    assert cut[0].input_ids == full.input_ids[: first_label + 3] and cut[0].trained == 3
    assert stats.truncated == 1
    long_prompt = Example(messages=[{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}])
    kept, stats = encode_examples(tok, [long_prompt, ex], "sft", cutoff_len=60)
    assert stats.too_long_dropped == 1 and len(kept) == 1


def test_pretraining_text_is_chunked_with_eos(tok):
    chunks = encode_text(tok, "Fever is common. " * 30, cutoff_len=32)
    assert all(len(c) <= 32 for c in chunks) and len(chunks) > 2
    assert chunks[-1].input_ids[-1] == tok.eos_token_id
    assert all(c.labels == c.input_ids for c in chunks)
