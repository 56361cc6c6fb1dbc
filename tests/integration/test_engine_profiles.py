"""Profiles in the engine: outputs change with the adapter, switching restores outputs exactly, a stacked
chain equals peft's merged model, and profiles that cannot run are refused with a clear line."""

from __future__ import annotations

import pytest
import torch

from tests.support.fixtures_models import make_lora_adapter
from medchat.core.errors import UserError
from medchat.core.settings import GenerationSettings
from test_engine_support import (INT8_BOUNDS, GREEDY, MSGS, Trace, install, load_hf, make_engine,  # noqa: F401
                                 one_torch_thread, prefill_logits, reference_logits, same_logits)


@pytest.fixture
def profiles(tiny_model_dir, lora_a, lora_b):
    """'a', 'b' (single adapters) and 'ab' (stacked: a's adapter, then its own lora_b)."""
    def setup(engine):
        install(engine.store, "a", lora_a, tiny_model_dir)
        install(engine.store, "b", lora_b, tiny_model_dir)
        install(engine.store, "ab", lora_b, tiny_model_dir, chain=["a"])
        return engine
    return setup


@pytest.fixture(scope="module")
def merged_ab(tiny_model_dir, lora_a, lora_b):
    return load_hf(tiny_model_dir, lora_a, lora_b)


def test_profile_output_differs_from_base_greedy_and_seeded(tiny_model_dir, profiles, monkeypatch):
    engine = profiles(make_engine(tiny_model_dir, "float"))
    trace = Trace(engine, monkeypatch)
    greedy = GenerationSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=12)
    seeded = GenerationSettings(temperature=1.0, top_k=0, top_p=1.0, seed=1234, max_new_tokens=12)
    out = {}
    for name in ("base", "a", "b"):
        engine.use(name)
        out[name] = (trace.run(settings=greedy), trace.run(settings=seeded), trace.run(settings=seeded))
    for name, (g, s1, s2) in out.items():
        assert s1[1] == s2[1]  # same seed, same profile: same sample
    for x, y in (("base", "a"), ("base", "b"), ("a", "b")):
        assert out[x][0][1] != out[y][0][1], (x, y)  # greedy tokens differ
        assert not torch.allclose(out[x][0][2][0], out[y][0][2][0], atol=1e-3)
        assert out[x][1][1] != out[y][1][1], (x, y)  # seeded samples differ too


@pytest.mark.parametrize("backend", ["float", "hf", "int8"])
def test_switching_back_and_forth_restores_outputs_exactly(tiny_model_dir, profiles, monkeypatch, backend):
    engine = profiles(make_engine(tiny_model_dir, backend))
    trace = Trace(engine, monkeypatch)
    seen = []
    for name in ("base", "a", "b", "a", "base", "ab", "b", "ab"):
        assert engine.use(name).name == name and engine.profile.name == name
        text, tokens, logits = trace.run()
        assert trace.stats.reused_tokens == 0  # a switch drops the KV cache of the other adapters
        seen.append((name, tokens, logits))
    by_name: dict = {}
    for name, tokens, logits in seen:
        if name in by_name:
            assert tokens == by_name[name][0], name
            assert same_logits(logits, by_name[name][1]), f"{name} not restored exactly on {backend}"
        else:
            by_name[name] = (tokens, logits)
    names = list(by_name)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            assert not torch.allclose(by_name[x][1][0], by_name[y][1][0], atol=1e-3), (x, y)


@pytest.mark.parametrize("backend", ["float", "hf"])
def test_stacked_chain_equals_peft_merged_model(tiny_model_dir, profiles, merged_ab, backend):
    engine = profiles(make_engine(tiny_model_dir, backend))
    assert engine.use("ab").chain == ["a", "ab"]
    ids = engine.prompt_ids(MSGS, 8)
    engine.backend.reset()
    ref = reference_logits(merged_ab, ids + [5, 17, 42])
    got = [engine.backend.forward(ids)] + [engine.backend.forward([t]) for t in (5, 17, 42)]
    for i, logits in enumerate(got):
        torch.testing.assert_close(logits, ref[len(ids) - 1 + i], rtol=1e-4, atol=1e-4)
    engine.use("a")  # and the stack is really two adapters, not just the last one
    assert not torch.allclose(prefill_logits(engine), ref[len(ids) - 1], atol=1e-3)


@pytest.mark.parametrize("mode,bound", sorted(INT8_BOUNDS.items()))
def test_stacked_chain_on_int8_stays_close_to_the_merged_model(tiny_model_dir, profiles, merged_ab, mode, bound):
    engine = profiles(make_engine(tiny_model_dir, "int8", decode_mode=mode))
    engine.use("ab")
    ids = engine.prompt_ids(MSGS, 8)
    ref = reference_logits(merged_ab, ids)[-1]
    got = prefill_logits(engine)
    assert ((got - ref).norm() / ref.norm()).item() < bound


def test_unknown_profile_is_a_user_error(tiny_model_dir):
    engine = make_engine(tiny_model_dir)
    with pytest.raises(UserError, match="unknown profile 'nope'"):
        engine.use("nope")
    assert engine.profile.is_base


def test_reward_profile_cannot_chat(tiny_model_dir, lora_a):
    engine = make_engine(tiny_model_dir)
    install(engine.store, "judge", lora_a, tiny_model_dir, kind="reward", stage="rm")
    with pytest.raises(UserError, match="'judge' is a reward profile.*--reward judge") as exc:
        engine.use("judge")
    assert "\n" not in str(exc.value) and engine.profile.is_base


@pytest.mark.parametrize("backend", ["float", "hf"])
@pytest.mark.parametrize("loaded_first", [False, True])
def test_profile_for_another_base_is_refused_and_nothing_changes(tiny_model_dir, other_model_dir, lora_a,
                                                                  tmp_path, backend, loaded_first):
    engine = make_engine(tiny_model_dir, backend)
    install(engine.store, "a", lora_a, tiny_model_dir)
    before = prefill_logits(engine)
    if loaded_first:  # on the transformers path the first adapter creates the peft wrapper
        engine.use("a")
    foreign = make_lora_adapter(other_model_dir, tmp_path / "foreign", seed=3)
    install(engine.store, "other", foreign, other_model_dir)  # fingerprint of the other base
    with pytest.raises(UserError, match=f"made for base '{other_model_dir}'.*--base") as exc:
        engine.use("other")
    assert "\n" not in str(exc.value)
    # same adapter, no fingerprint recorded: the shape check at load still refuses it, every time
    prof = engine.store.get("other")
    prof.base_fingerprint = ""
    engine.store.update(prof)
    for _ in range(2):
        with pytest.raises(UserError, match="does not fit the loaded base"):
            engine.use("other")
    assert engine.profile.name == ("a" if loaded_first else "base")
    engine.use("base")
    assert torch.equal(prefill_logits(engine), before)  # the failed loads left the model untouched
    engine.use("a")
    fresh = make_engine(tiny_model_dir, backend)
    fresh.use("a")
    torch.testing.assert_close(prefill_logits(engine), prefill_logits(fresh), rtol=1e-5, atol=1e-5)


def test_chain_with_a_removed_parent_is_refused(tiny_model_dir, profiles):
    engine = profiles(make_engine(tiny_model_dir))
    engine.store.remove("a", force=True)
    with pytest.raises(UserError, match="stacks on 'a', which was removed"):
        engine.use("ab")


def test_lora_feature_the_fast_path_lacks_points_to_no_fast(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], use_dora=True,
                                                  task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
    peft_model.save_pretrained(tmp_path / "dora")
    fast = make_engine(tiny_model_dir, "float")
    install(fast.store, "dora", tmp_path / "dora", tiny_model_dir)
    with pytest.raises(UserError, match="--no-fast"):
        fast.use("dora")
    slow = make_engine(tiny_model_dir, "hf")
    slow.use("dora")  # the transformers path runs it
    ids = slow.prompt_ids(MSGS, 8)
    ref = reference_logits(peft_model.eval(), ids)[-1]
    torch.testing.assert_close(prefill_logits(slow), ref, rtol=1e-4, atol=1e-4)


def test_profile_template_and_settings_reach_the_prompt(tiny_model_dir, lora_a):
    engine = make_engine(tiny_model_dir)
    tmpl = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant] "
    install(engine.store, "styled", lora_a, tiny_model_dir, chat_template=tmpl)
    plain = engine.tokenizer.decode(engine.prompt_ids(MSGS, GREEDY.max_new_tokens))
    engine.use("styled")
    styled = engine.tokenizer.decode(engine.prompt_ids(MSGS, GREEDY.max_new_tokens))
    assert "<|im_start|>" in plain and "<|im_start|>" not in styled
    assert styled.startswith("[system] Be brief.") and styled.endswith("[assistant] ")


@pytest.mark.parametrize("backend", ["float", "hf"])
def test_dotted_profile_names_work_on_every_path(tiny_model_dir, lora_a, lora_b, merged_ab, backend):
    engine = make_engine(tiny_model_dir, backend)
    install(engine.store, "covid.v2", lora_a, tiny_model_dir)
    install(engine.store, "covid.v3", lora_b, tiny_model_dir, chain=["covid.v2"])
    engine.use("covid.v3")  # peft itself refuses adapter names with '.'
    ref = reference_logits(merged_ab, engine.prompt_ids(MSGS, GREEDY.max_new_tokens))[-1]
    torch.testing.assert_close(prefill_logits(engine), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["float", "hf"])
def test_a_reinstalled_profile_is_reloaded_not_served_from_cache(tiny_model_dir, lora_a, lora_b, backend):
    engine = make_engine(tiny_model_dir, backend)
    install(engine.store, "x", lora_a, tiny_model_dir)
    engine.use("x")
    old = prefill_logits(engine)
    engine.use("base")
    engine.store.remove("x")  # e.g. from another terminal, then retrained under the same name
    install(engine.store, "x", lora_b, tiny_model_dir)
    engine.use("x")
    got = prefill_logits(engine)
    fresh = make_engine(tiny_model_dir, backend)
    fresh.use("x")
    assert torch.equal(got, prefill_logits(fresh)) and not torch.allclose(got, old, atol=1e-3)
