"""The measurements behind `medchat bench`. Each figure is the median of several runs.

Runs in a throw-away MEDCHAT_HOME (the model cache is shared read-only via a symlink) so benchmark
profiles never show up in the user's store.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from medchat.core.engine.protocol import collect

PROMPT = [{"role": "system", "content": "You are a careful medical assistant."},
          {"role": "user", "content": "What are the common symptoms of influenza, and when should I see a doctor?"}]
QUALITY_PROMPTS = ["How is strep throat diagnosed?", "What raises the risk of type 2 diabetes?",
                   "How do I know if a cut needs stitches?", "What is a normal resting heart rate?",
                   "Why do antibiotics not work on colds?"]


def _median(xs):
    return float(statistics.median(xs))


def _bench_lora(model_dir: Path, out: Path, seed: int) -> Path:
    """A random r=8 all-linear LoRA on the real base: same cost as a trained profile."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    pm = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    pm.save_pretrained(out)
    return out


def _install_profiles(engine, model_dir: Path, tmp: Path) -> list[str]:
    from medchat.core.models import fingerprint
    from medchat.core.profiles import Profile

    names = []
    for i, name in enumerate(("bench-a", "bench-b")):
        adapter = _bench_lora(model_dir, tmp / name, seed=i)
        engine.store.install(Profile(name=name, base=engine.base_name, base_fingerprint=fingerprint(model_dir),
                                     stage="bench", method="lora"), adapter)
        names.append(name)
    return names


def decode(engine, tokens: int, repeats: int) -> dict:
    from transformers import AutoModelForCausalLM

    from medchat.core.settings import GenerationSettings

    greedy = GenerationSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=tokens)
    rates = []
    for _ in range(repeats):
        engine.reset()  # no reuse: a cold prompt every run
        t0 = time.perf_counter()
        _, stats = collect(engine.stream(PROMPT, greedy))
        rates.append(stats.completion_tokens / (time.perf_counter() - t0))
    # plain transformers generate, fp32, same model + same adapter chain via peft
    ref = AutoModelForCausalLM.from_pretrained(engine.info["dir"], dtype=torch.float32)
    if not engine.profile.is_base:
        from peft import PeftModel

        for link, d in engine.store.chain_dirs(engine.profile):
            ref = PeftModel.from_pretrained(ref, str(d)).merge_and_unload()
    ids = torch.tensor([engine.prompt_ids(PROMPT, tokens)])
    gen_rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, min_new_tokens=tokens,
                           do_sample=False)
        gen_rates.append((out.shape[1] - ids.shape[1]) / (time.perf_counter() - t0))
    quality = _quality(engine, ref, greedy)
    e, g = _median(rates), _median(gen_rates)
    return {"profile": engine.profile.name, "backend": engine.info["backend"], "tokens": tokens,
            "engine_tok_s": round(e, 1), "generate_tok_s": round(g, 1), "ratio": round(e / g, 2), **quality}


def _quality(engine, ref, greedy) -> dict:
    """Default fast path vs transformers fp32: greedy agreement over 32 tokens (re-tokenized text) and
    logit distance. The per-mode figures (decode.modes, medchat.app.bench_modes) compare token ids."""
    from dataclasses import replace

    settings = replace(greedy, max_new_tokens=32)
    agree, diffs = [], []
    for q in QUALITY_PROMPTS:
        msgs = [{"role": "user", "content": q}]
        ids = engine.prompt_ids(msgs, 32)
        engine.reset()
        fast_logits = engine.backend.forward(ids)
        ref_logits = ref(torch.tensor([ids])).logits[0, -1]
        diffs.append(float((fast_logits - ref_logits).abs().max() / ref_logits.abs().max()))
        engine.reset()
        fast_ids = engine.tokenizer(engine.generate(msgs, settings), add_special_tokens=False)["input_ids"]
        t = torch.tensor([ids])
        out = ref.generate(t, attention_mask=torch.ones_like(t), max_new_tokens=32, do_sample=False)
        ref_text = engine.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
        ref_ids = engine.tokenizer(ref_text, add_special_tokens=False)["input_ids"]
        same = 0
        for a, b in zip(fast_ids, ref_ids):
            if a != b:
                break
            same += 1
        agree.append(same / max(1, min(len(ref_ids), 32)))
    return {"greedy_prefix_agreement": round(_median(agree), 2),
            "max_rel_logit_diff": round(max(diffs), 4)}


def ttft(engine, repeats: int) -> dict:
    from medchat.core.settings import GenerationSettings

    s = GenerationSettings(temperature=0.0, max_new_tokens=24, repetition_penalty=1.0)
    questions = ["I have had a sore throat for two days.", "It hurts to swallow.", "No fever so far.",
                 "Should I take ibuprofen?", "How long will it last?", "Is it contagious?",
                 "Can I go to work?", "What about my kids?", "When should I worry?", "Thank you, anything else?"]
    runs1, runs10, cold10 = [], [], []
    for _ in range(repeats):
        engine.reset()
        msgs = [{"role": "system", "content": "You are a careful medical assistant."}]
        for i, q in enumerate(questions):
            msgs.append({"role": "user", "content": q})
            reply, stats = collect(engine.stream(msgs, s))
            if i == 0:
                runs1.append(stats.ttft_s)
            if i == 9:
                runs10.append(stats.ttft_s)
                engine.reset()
                stats = collect(engine.stream(msgs, s))[1]
                cold10.append(stats.ttft_s)
            msgs.append({"role": "assistant", "content": reply})
    return {"turn1_ms": round(_median(runs1) * 1000, 1), "turn10_ms": round(_median(runs10) * 1000, 1),
            "turn10_no_reuse_ms": round(_median(cold10) * 1000, 1),
            "turn10_prompt_tokens": stats.prompt_tokens}


def switch(engine, names: list[str], repeats: int, base: str | None) -> dict:
    from medchat.core.engine import ChatEngine

    for n in names:
        engine.use(n)  # first load of each chain is not a switch
    times = []
    for i in range(max(20, repeats * 10)):
        t0 = time.perf_counter()
        engine.use(names[i % 2] if i % 3 else "base")
        times.append(time.perf_counter() - t0)
    reloads = []
    for _ in range(max(1, repeats - 1)):
        t0 = time.perf_counter()
        e2 = ChatEngine(base, store=engine.store)
        e2.use(names[0])
        reloads.append(time.perf_counter() - t0)
        del e2
    return {"p50_ms": round(_median(times) * 1000, 2), "p95_ms": round(sorted(times)[int(len(times) * 0.95) - 1] * 1000, 2),
            "full_reload_s": round(_median(reloads), 2)}


def start(base: str | None, tmp: Path, repeats: int = 3) -> dict:
    """Warm start: engine ready from the cached safetensors, median of `repeats` fresh processes
    (imports included). Cold: once, the GGUF conversion included."""
    import subprocess
    import sys

    code = "import time;t=time.perf_counter();from medchat.core.engine import ChatEngine;ChatEngine(%r);print(time.perf_counter()-t)" % base

    def once(env=None) -> float:
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        return float(run.stdout.strip().splitlines()[-1])

    runs = [once() for _ in range(max(1, repeats))]
    out = {"warm_s": round(_median(runs), 2), "warm_runs_s": [round(r, 2) for r in runs]}
    if base is None:
        out["cold_s"] = round(once(dict(os.environ, MEDCHAT_HOME=str(tmp / "cold-home"))), 2)
    return out


def run_all(args) -> int:
    from medchat.core import paths
    from medchat.core.engine import ChatEngine

    sections = [s for s in args.only.split(",") if s] or ["decode", "under_load", "ttft", "switch", "start",
                                                          "first_answer", "kb", "sft", "triage"]
    results: dict = {"machine": {"threads": torch.get_num_threads(), "torch": torch.__version__,
                                 "load_avg_start": _load_avg()}}
    real_models = paths.models_dir()
    with tempfile.TemporaryDirectory(prefix="medchat-bench-") as tmpd:
        tmp = Path(tmpd)
        os.environ["MEDCHAT_HOME"] = str(tmp / "home")
        (tmp / "home").mkdir()
        os.symlink(real_models, tmp / "home" / "models")
        engine = None
        if {"decode", "under_load", "ttft", "switch"} & set(sections):
            engine = ChatEngine(args.base)
            names = _install_profiles(engine, Path(engine.info["dir"]), tmp)
            engine.use(names[0])
            results["model"] = {"base": engine.base_name, "backend": engine.info["backend"]}
        for name in sections:
            _say(f"bench: {name}…")
            if name == "decode":
                results.setdefault("decode", {}).update(decode(engine, args.tokens, args.repeats))
                from medchat.app.bench_modes import measure

                modes = [m for m in getattr(args, "decode_modes", "").split(",") if m] or None
                results["decode"].update(measure(args.base, engine.store, engine.profile.name, PROMPT,
                                                 args.tokens, args.repeats, modes))
                from medchat.app.bench_llamacpp import compare

                results["decode"].update(compare(engine, PROMPT, args.tokens, args.repeats,
                                                 results["decode"]["engine_tok_s"],
                                                 getattr(args, "llamacpp_python", None), args.base))
            elif name == "under_load":  # decode.under_load_*: beside a competing CPU-bound process
                from medchat.app.bench_load import engine_rate, under_load

                results.setdefault("decode", {}).update(under_load(engine_rate(engine, PROMPT, args.tokens),
                                                                   args.repeats))
            elif name == "ttft":
                results["ttft"] = ttft(engine, args.repeats)
            elif name == "switch":
                results["switch"] = switch(engine, names, args.repeats, args.base)
            elif name == "start":
                results.setdefault("start", {}).update(start(args.base, tmp, args.repeats))
            elif name == "first_answer":  # start.first_answer_*: a new user's first `medchat ask`
                from medchat.app.bench_load import first_answer
                from medchat.core.models import resolve_base

                resolve_base(args.base)  # converted now if it never was: no GGUF conversion inside the figure
                results.setdefault("start", {}).update(first_answer(args.base, real_models, tmp, args.repeats))
            elif name == "kb":
                from kb.bench import run as kb_run

                results["kb"] = kb_run(n_chunks=args.kb_chunks)
            elif name == "triage":
                from medchat.app.triage.bench import run as triage_run

                results["triage"] = triage_run()
            elif name == "sft":
                from trainer.bench import run as sft_run

                results["sft"] = sft_run(steps=args.sft_steps, base=args.base)
    text = json.dumps(results, indent=2)
    if args.out:
        paths.atomic_write_text(Path(args.out), text)
    if args.json:
        print(text)
    else:
        _table(results)
    return 0


def _load_avg() -> list[float] | None:
    """1, 5 and 15-minute load averages when the bench starts: every figure moves with the machine's load."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _say(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


def _table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table("section", "figure", "value", title="medchat bench")
    for section, figures in results.items():
        if isinstance(figures, dict):
            for k, v in figures.items():
                t.add_row(section, k, str(v))
    Console().print(t)
