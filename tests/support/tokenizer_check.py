"""A check that a tokenizer answers as transformers' tokenizer does (the chat path's ChatTokenizer)."""

from __future__ import annotations

from medchat.core.engine.prompt import FALLBACK_TEMPLATE
from medchat.core.engine.tokenizer import ChatTokenizer

TEXTS = ["", "hello", "Hello there!  Two  spaces, a tab\tand\nnew lines\n\n",
         "Chest pain with sweating: call 112 now.", "naïve café — “quotes” 🙂 emoji", "发烧三天了怎么办？",
         "<|im_start|>user\nhi<|im_end|>", "  leading and trailing  ", "a" * 300]
CHATS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "My child has a fever of 39 °C."},
     {"role": "assistant", "content": "How old is the child?"}, {"role": "user", "content": "two years"}],
    [{"role": "system", "content": "{{ not a template }} {% raw %}"}, {"role": "user", "content": "<b>&amp;</b>"}],
]
# a template that uses what chat templates use: loop controls, tojson, raise_exception, whitespace control
FANCY = ("{% for m in messages %}{% if m.role == 'bad' %}{{ raise_exception('bad role') }}{% endif %}"
         "{% if loop.index > 9 %}{% break %}{% endif %}\n  {{ m.role | upper }}: {{ m | tojson }}\n{% endfor %}"
         "{% if add_generation_prompt %}{{ bos_token }}A:{% endif %}")


def pair(model_dir):
    """(ChatTokenizer, transformers' tokenizer) of one folder."""
    from transformers import PreTrainedTokenizerFast

    return ChatTokenizer.open(model_dir), PreTrainedTokenizerFast.from_pretrained(model_dir)


def check_same(ours, theirs):
    """Every method the chat path calls gives transformers' answer."""
    assert ours is not None
    for text in TEXTS:
        for special in (True, False):
            assert ours.encode(text, add_special_tokens=special) == theirs.encode(text, add_special_tokens=special)
            assert ours(text, add_special_tokens=special)["input_ids"] == \
                theirs(text, add_special_tokens=special)["input_ids"]
        ids = theirs.encode(text, add_special_tokens=False)
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip)
            for i in range(len(ids)):  # the stream decodes growing prefixes, cut mid-character too
                assert ours.decode(ids[:i], skip_special_tokens=skip) == theirs.decode(ids[:i], skip_special_tokens=skip)
    for key in ("bos_token", "eos_token", "pad_token", "unk_token", "bos_token_id", "eos_token_id", "pad_token_id",
                "unk_token_id", "chat_template", "all_special_tokens", "all_special_ids", "added_tokens_encoder"):
        assert getattr(ours, key) == getattr(theirs, key), key
    assert {i: t.content for i, t in ours.added_tokens_decoder.items()} == \
        {i: t.content for i, t in theirs.added_tokens_decoder.items()}
    assert len(ours) == len(theirs)
    for token in ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "no-such-token-at-all"):
        assert ours.convert_tokens_to_ids(token) == theirs.convert_tokens_to_ids(token)
    assert ours.convert_ids_to_tokens([0, 1, 2, 5]) == theirs.convert_ids_to_tokens([0, 1, 2, 5])
    for chat in CHATS:
        for template in (None, FALLBACK_TEMPLATE, FANCY):
            for gen in (True, False):
                kw = dict(chat_template=template, add_generation_prompt=gen)
                assert ours.apply_chat_template(chat, tokenize=False, **kw) == \
                    theirs.apply_chat_template(chat, tokenize=False, **kw)
                expected = theirs.apply_chat_template(chat, tokenize=True, **kw)
                expected = expected["input_ids"] if hasattr(expected, "keys") else expected
                assert ours.apply_chat_template(chat, tokenize=True, **kw) == list(expected)
    assert ours.__dict__["_full"] is None  # none of it needed transformers' tokenizer
