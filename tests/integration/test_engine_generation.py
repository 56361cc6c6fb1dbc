"""Generation through ChatEngine.stream: prefix reuse, cancellation, EOS / role-marker / length stops,
and trimming the conversation to the context budget."""

from __future__ import annotations

import threading

import pytest
import torch

from medchat.core.engine.protocol import collect
from medchat.core.errors import UserError
from medchat.core.settings import DOCTOR_SYSTEM_PROMPT, GenerationSettings
from test_engine_support import MSGS, Trace, make_engine, one_torch_thread  # noqa: F401

GREEDY8 = GenerationSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=8)


def force(engine, monkeypatch, token_ids: list[int]):
    """Make the model 'choose' exactly these tokens (the real forward still runs and fills the cache)."""
    inner = engine.backend.forward
    queue = list(token_ids)

    def forward(ids):
        out = inner(ids)
        forced = torch.full_like(out, -1e9)
        forced[queue.pop(0) if queue else 3] = 0.0
        return forced

    monkeypatch.setattr(engine.backend, "forward", forward)


def _chunks_and_stats(stream) -> tuple[list[str], object]:
    chunks = []
    while True:
        try:
            chunks.append(next(stream))
        except StopIteration as end:
            return chunks, end.value


def text_ids(engine, text: str) -> list[int]:
    return engine.tokenizer(text, add_special_tokens=False)["input_ids"]


# --- prefix reuse ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["float", "hf"])
def test_prefix_reuse_gives_the_same_tokens_as_a_cold_prefill(tiny_model_dir, monkeypatch, backend):
    warm = make_engine(tiny_model_dir, backend)
    trace = Trace(warm, monkeypatch)
    reply, _, _ = trace.run(MSGS, GREEDY8)
    first_prompt = trace.stats.prompt_tokens
    assert trace.stats.reused_tokens == 0
    convo = MSGS + [{"role": "assistant", "content": reply or "Rest and drink fluids."},
                    {"role": "user", "content": "And for a child?"}]
    for turn in range(2):
        text, tokens, logits = trace.run(convo, GREEDY8)
        assert trace.stats.reused_tokens >= first_prompt - 1, trace.stats  # at least the whole first prompt
        assert trace.stats.reused_tokens < trace.stats.prompt_tokens
        cold = make_engine(tiny_model_dir, backend)
        cold_trace = Trace(cold, monkeypatch)
        c_text, c_tokens, c_logits = cold_trace.run(convo, GREEDY8)
        assert cold_trace.stats.reused_tokens == 0
        assert tokens == c_tokens and text == c_text
        for w, c in zip(logits, c_logits, strict=True):
            torch.testing.assert_close(w, c, rtol=1e-4, atol=1e-4)
        convo = convo + [{"role": "assistant", "content": text or "Take paracetamol as directed."},
                         {"role": "user", "content": "Thanks. Anything else?"}]


@pytest.mark.parametrize("backend", ["float", "hf"])
def test_regenerating_the_same_prompt_reuses_all_but_the_last_token(tiny_model_dir, monkeypatch, backend):
    engine = make_engine(tiny_model_dir, backend)
    trace = Trace(engine, monkeypatch)
    first = trace.run(MSGS, GREEDY8)
    again = trace.run(MSGS, GREEDY8)
    assert trace.stats.reused_tokens == trace.stats.prompt_tokens - 1
    assert first[1] == again[1]
    for a, b in zip(first[2], again[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


# --- a given lead ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["float", "hf"])
def test_a_lead_is_shown_first_and_the_model_continues_after_it(tiny_model_dir, monkeypatch, backend):
    """stream(lead=...): the lead is the reply's first chunk and part of its text, the model's first
    token is the one it picks after prompt + lead, and the cache holds the lead for the next turn."""
    lead = "Rest and fluids help most people [1]."
    cold = make_engine(tiny_model_dir, backend)
    lead_ids = text_ids(cold, lead)
    prompt = cold.prompt_ids(MSGS, GREEDY8.max_new_tokens + len(lead_ids))
    expected_first = int(torch.argmax(cold.backend.forward(prompt + lead_ids)))
    engine = make_engine(tiny_model_dir, backend)
    trace = Trace(engine, monkeypatch)
    chunks, stats = _chunks_and_stats(engine.stream(MSGS, GREEDY8, lead=lead))
    ids = trace.streams[-1].ids
    assert chunks[0] == lead and stats.text.startswith(lead) and "".join(chunks) == stats.text
    assert ids[:len(lead_ids)] == lead_ids and ids[len(lead_ids)] == expected_first
    assert stats.completion_tokens == len(ids) - len(lead_ids) and stats.prompt_tokens == len(prompt) + len(lead_ids)
    assert engine.backend.cached_ids[:len(prompt) + len(lead_ids)] == prompt + lead_ids


# --- cancellation -------------------------------------------------------------------------------------
def test_cancel_from_inside_the_stream_loop_stops_generation(tiny_model_dir):
    engine = make_engine(tiny_model_dir, "float")
    settings = GenerationSettings(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=0,
                                  max_new_tokens=120)
    full, full_stats = collect(engine.stream(MSGS, settings))
    full_tokens = full_stats.completion_tokens
    cancel = threading.Event()
    chunks = []
    stream = engine.stream(MSGS, settings, cancel)
    while True:
        try:
            chunks.append(next(stream))
        except StopIteration as end:
            stats = end.value
            break
        if len(chunks) == 3:
            cancel.set()
    assert stats.stop_reason == "cancelled"
    assert 3 <= len(chunks) <= 4  # the held-back tail may be flushed once, nothing is generated after
    assert 0 < stats.completion_tokens < full_tokens <= settings.max_new_tokens
    assert full.startswith("".join(chunks)) and stats.text == "".join(chunks)


def test_cancel_set_before_the_first_token(tiny_model_dir):
    engine = make_engine(tiny_model_dir, "float")
    cancel = threading.Event()
    cancel.set()
    text, stats = collect(engine.stream(MSGS, GREEDY8, cancel))
    assert text == ""
    assert stats.stop_reason == "cancelled" and stats.completion_tokens == 0


# --- stops -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stop", ["<|im_end|>", "<|im_start|>", "<|endoftext|>"])
def test_eos_and_role_marker_tokens_stop(tiny_model_dir, monkeypatch, stop):
    engine = make_engine(tiny_model_dir, "float")
    said = text_ids(engine, "Rest well.")
    stop_id = engine.tokenizer.convert_tokens_to_ids(stop)
    force(engine, monkeypatch, said + [stop_id] + text_ids(engine, " More words here."))
    out, stats = collect(engine.stream(MSGS, GenerationSettings(temperature=0.0, max_new_tokens=30)))
    prompt = engine.prompt_ids(MSGS, 30)
    assert out == "Rest well." and stats.stop_reason == "eos"
    assert stats.completion_tokens == len(said)
    assert engine.backend.cached_ids == prompt + said  # the stop token itself was never fed


@pytest.mark.parametrize("backend", ["float", "hf"])
def test_invented_next_turn_is_cut_and_dropped_from_the_cache(tiny_model_dir, monkeypatch, backend):
    engine = make_engine(tiny_model_dir, backend)
    script = text_ids(engine, "Sure, rest at home and drink fluids.\nUser: what about tomorrow? More.")
    force(engine, monkeypatch, script)
    chunks, stats = _chunks_and_stats(engine.stream(MSGS, GenerationSettings(temperature=0.0, max_new_tokens=60)))
    assert "".join(chunks).rstrip() == "Sure, rest at home and drink fluids."
    assert not any("User" in c for c in chunks)
    assert stats.stop_reason == "marker" and stats.text == "Sure, rest at home and drink fluids."
    assert stats.completion_tokens < len(script)
    assert engine.backend.cached_ids == engine.prompt_ids(MSGS, 60)  # invented-turn tokens dropped
    if backend == "hf":
        assert engine.backend._cache.get_seq_length() == len(engine.backend.cached_ids)


def test_length_cut_drops_the_dangling_sentence(tiny_model_dir, monkeypatch):
    engine = make_engine(tiny_model_dir, "float")
    first = "Rest at home and drink plenty of fluids."
    script = text_ids(engine, first + " Then see a doctor if")
    force(engine, monkeypatch, script)
    chunks, stats = _chunks_and_stats(engine.stream(MSGS, GenerationSettings(temperature=0.0,
                                                                             max_new_tokens=len(script))))
    assert stats.stop_reason == "length" and stats.completion_tokens == len(script)
    assert "".join(chunks) == first and stats.text == first


def test_random_model_stops_by_length_with_consistent_stats(tiny_model_dir):
    engine = make_engine(tiny_model_dir, "float")
    _, s = collect(engine.stream(MSGS, GREEDY8))
    assert s.prompt_tokens == len(engine.prompt_ids(MSGS, 8)) == engine.count_tokens(MSGS)
    assert s.stop_reason in ("length", "eos", "marker") and 0 < s.completion_tokens <= 8
    assert 0 < s.ttft_s <= s.total_s


# --- context budget -----------------------------------------------------------------------------------------
def test_context_limit_is_capped_by_the_model(tiny_model_dir):
    assert make_engine(tiny_model_dir, "float").context_limit == 512
    assert make_engine(tiny_model_dir, "float", context_limit=200).context_limit == 200


def test_long_history_is_trimmed_oldest_first_and_still_answers(tiny_model_dir):
    engine = make_engine(tiny_model_dir, "float", context_limit=160)
    msgs = [MSGS[0]]
    for i in range(12):
        msgs += [{"role": "user", "content": f"Question number {i} about my cough?"},
                 {"role": "assistant", "content": f"Answer number {i}: rest and drink fluids."}]
    msgs.append({"role": "user", "content": "Last question: is it serious?"})
    _, stats = collect(engine.stream(msgs, GREEDY8))
    assert stats.prompt_tokens <= 160 - 8
    text = engine.tokenizer.decode(engine.prompt_ids(msgs, 8))
    assert text.startswith("<|im_start|>system\nBe brief.")
    assert "Last question" in text and "Question number 0 " not in text and "Question number 11" in text


def test_single_oversize_message_is_cut_not_crashing(tiny_model_dir):
    engine = make_engine(tiny_model_dir, "float", context_limit=128)
    huge = "My cough started long ago. " * 200 + "What should I do?"
    _, stats = collect(engine.stream([MSGS[0], {"role": "user", "content": huge}], GREEDY8))
    assert 0 < stats.prompt_tokens <= 128 - 8
    assert engine.tokenizer.decode(engine.prompt_ids([MSGS[0], {"role": "user", "content": huge}], 8)) \
        .rstrip().endswith("What should I do?<|im_end|>\n<|im_start|>assistant")


def test_system_prompt_too_long_for_the_budget_is_a_user_error(tiny_model_dir):
    engine = make_engine(tiny_model_dir, "float", context_limit=128)
    msgs = [{"role": "system", "content": DOCTOR_SYSTEM_PROMPT}, {"role": "user", "content": "hi"}]
    with pytest.raises(UserError, match="system prompt alone exceeds the context budget") as exc:
        engine.generate(msgs, GREEDY8)
    assert "\n" not in str(exc.value)
    assert engine.generate(MSGS, GREEDY8) is not None  # the engine still works afterwards


def test_a_reply_length_that_leaves_no_room_names_the_setting_not_the_system_prompt(tiny_model_dir):
    engine = make_engine(tiny_model_dir, "float", context_limit=512)
    msgs = [{"role": "system", "content": DOCTOR_SYSTEM_PROMPT}, {"role": "user", "content": "hi"}]
    too_long = GenerationSettings(temperature=0.0, max_new_tokens=500)
    with pytest.raises(UserError, match="max_new_tokens 500 leaves") as exc:
        engine.generate(msgs, too_long)
    assert "system prompt alone" not in str(exc.value) and "/set max_new_tokens" in str(exc.value)
    assert engine.generate(msgs, GREEDY8) is not None


def test_repetition_penalty_counts_the_reply_not_the_prompt(tiny_model_dir, monkeypatch):
    """Words of the prompt (the KB passages) are not penalised, or the model is pushed away from
    restating them; a token the reply already used is."""
    engine = make_engine(tiny_model_dir, "float")
    prompt = engine.prompt_ids(MSGS, 8)
    a = prompt[-3]  # a token that is in the prompt
    b = next(t for t in range(5, 1000) if t not in prompt and t not in engine._stops)
    inner, chosen = engine.backend.forward, []

    def forward(ids):
        if len(ids) == 1:
            chosen.append(ids[0])  # each decode step feeds back the token just chosen
        out = torch.full_like(inner(ids), -1e9)
        out[a], out[b] = 1.0, 0.9  # a wins unless it is penalised (1.0 / 3 < 0.9)
        return out

    monkeypatch.setattr(engine.backend, "forward", forward)
    list(engine.stream(MSGS, GenerationSettings(temperature=0.0, repetition_penalty=3.0, max_new_tokens=3)))
    assert chosen == [a, b]  # a although the prompt holds it; then b, because the reply now holds a


@pytest.mark.parametrize("adaptive", [True, False])
def test_decoding_follows_the_thread_budget_unless_threads_are_set(tiny_model_dir, monkeypatch, adaptive):
    from medchat.core import threads
    from medchat.core.engine import engine as engine_mod

    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        engine = make_engine(tiny_model_dir, adaptive_threads=adaptive)
        asked = []
        monkeypatch.setattr(threads, "budget", lambda limit: asked.append(limit) or 1)  # a busy machine
        monkeypatch.setattr(engine_mod, "THREAD_CHECK_S", 0.0)  # look again after every token
        _, stats = collect(engine.stream(MSGS, GenerationSettings(temperature=0, max_new_tokens=5)))
        if adaptive:
            assert torch.get_num_threads() == 1
            assert asked == [2] * (1 + stats.completion_tokens)  # at the start, then after each token
        else:
            assert torch.get_num_threads() == 2 and asked == []  # an explicit thread setting is kept
    finally:
        torch.set_num_threads(n)
