"""Building the prompt: chat template, a documented fallback, and trimming to the context budget.

Trimming drops whole exchanges from the oldest end; the system prompt and the newest user turn are
never dropped. Since trimming keeps the prefix stable between turns until the budget is reached,
the engine's KV cache can reuse it.
"""

from __future__ import annotations

# Used when a tokenizer has no chat template (plain base models): explicit role tags that the
# stop list below also recognises, so invented next turns are cut.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### Patient:\n{{ m['content'] }}\n\n"
    "{% else %}### Doctor:\n{{ m['content'] }}{{ eos_token }}\n\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}### Doctor:\n{% endif %}"
)


def template_for(tokenizer, override: str = "") -> str:
    return override or getattr(tokenizer, "chat_template", None) or FALLBACK_TEMPLATE


def render_ids(tokenizer, messages: list[dict], template: str, add_generation_prompt: bool = True) -> list[int]:
    out = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True,
                                        add_generation_prompt=add_generation_prompt)
    if hasattr(out, "keys"):  # transformers 5 returns a BatchEncoding
        out = out["input_ids"]
    return list(out)


def trim_messages(tokenizer, messages: list[dict], budget: int, template: str) -> tuple[list[dict], list[int]]:
    """Drop the oldest non-system turns until the rendered prompt fits `budget` tokens."""
    system = [m for m in messages if m["role"] == "system"][:1]
    turns = [m for m in messages if m["role"] != "system"]
    while True:
        kept = system + turns
        ids = render_ids(tokenizer, kept, template)
        if len(ids) <= budget or len(turns) <= 1:
            break
        # drop the oldest exchange (user + its reply) so roles keep alternating
        drop = 2 if len(turns) > 2 and turns[0]["role"] == "user" and turns[1]["role"] == "assistant" else 1
        turns = turns[drop:]
    if len(ids) > budget:  # a single huge message: keep the system prompt, cut the message's head
        last = dict(turns[-1])
        room = budget - len(render_ids(tokenizer, system + [{**last, "content": ""}], template))
        if room <= 0:
            from medchat.core.errors import UserError

            raise UserError("the system prompt alone exceeds the context budget; shorten it with /system")
        text_ids = tokenizer(last["content"], add_special_tokens=False)["input_ids"]
        last["content"] = tokenizer.decode(text_ids[-room + 8:] if room > 8 else [])
        kept = system + [last]
        ids = render_ids(tokenizer, kept, template)
    return kept, ids
