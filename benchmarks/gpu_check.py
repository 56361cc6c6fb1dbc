"""The GPU path in one go (issue 14 item 8); run it through benchmarks/gpu_check.sh.

    python benchmarks/gpu_check.py [--smoke] [--out FILE] [--work DIR]    # every step, one JSON summary
    python benchmarks/gpu_check.py --step NAME --work DIR [--smoke]        # one step (what the parent runs)

Steps: qlora_7b (QLoRA SFT, NF4 + double quant + paged AdamW 8-bit, on a random 7B-shaped Llama: peak
VRAM, tokens/s), covid_recipe (the covid recipe sft -> rm -> ppo shrunk to the tiny test model, bf16),
decode (chat decode with a LoRA profile active, tok/s), ddp (2-process `accelerate launch`, only with
>= 2 GPUs). Each step runs in its own child process, so a CUDA OOM or a crash ends that step only and
peak VRAM is per step; the child writes WORK/NAME.json ({...} | {"error"} | {"skipped"}), its output
goes to WORK/NAME.log. --smoke runs the same code on CPU with tiny shapes (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("qlora_7b", "covid_recipe", "decode", "ddp")
LLAMA_7B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                intermediate_size=11008, vocab_size=32000, max_position_embeddings=4096)
LLAMA_SMOKE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                   intermediate_size=128, vocab_size=512, max_position_embeddings=512)


class Skip(Exception):
    """A step that cannot run on this machine: recorded as {"skipped": reason}, not a failure."""


# --- helpers shared by the steps ------------------------------------------------------------------
def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _gpu_names() -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line for line in out.stdout.splitlines() if line.startswith("GPU ")] if out.returncode == 0 else []


def _device(smoke: bool) -> str:
    if _cuda():
        return "cuda"
    if smoke:
        return "cpu"
    raise Skip("no CUDA")


def _peak(device: str) -> dict:
    import torch

    if not device.startswith("cuda"):
        return {"peak_vram_gib": None}
    return {"peak_vram_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3)}


def _tiny_model(work: Path) -> Path:
    """The test suite's tiny random Llama + byte-level BPE tokenizer (tests/support), built once per run."""
    from tests.support.fixtures_models import build_tiny_llama

    out = work / "tiny-llama"
    if not (out / "config.json").exists():
        build_tiny_llama(out)
    return out


def _random_llama(out: Path, shape: dict) -> Path:
    """A random-initialised Llama of `shape` saved as a sharded bf16 checkpoint, without ever holding the
    whole model: the model is built on the meta device only for its tensor names and shapes, and each
    decoder layer's random tensors are written to their own safetensors shard (7B: ~13.5 GB of disk,
    ~0.4 GB of RAM at a time, no GPU). The simplest way to a 7B checkpoint that `from_pretrained` can
    load in 4-bit like any downloaded model, on a 128 GB RAM / 64 GB disk machine."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.support.fixtures_models import build_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out)  # tiny offline BPE + ChatML template; ids fit any vocab >= len(tok)
    cfg = LlamaConfig(**shape, tie_word_embeddings=False, rms_norm_eps=1e-5, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.device("meta"):
        names = {k: v.shape for k, v in LlamaForCausalLM(cfg).state_dict().items()}
    shards: dict[str, list[str]] = {}
    for name in names:
        part = name.split(".")
        key = f"layer-{int(part[2]):03d}" if part[:2] == ["model", "layers"] else "rest"
        shards.setdefault(key, []).append(name)
    gen = torch.Generator().manual_seed(0)
    weight_map, total = {}, 0
    for key, keys in shards.items():
        tensors = {}
        for name in keys:
            shape_ = names[name]
            t = torch.ones(shape_) if name.endswith("norm.weight") else torch.randn(shape_, generator=gen) * 0.02
            tensors[name] = t.to(torch.bfloat16)
            total += tensors[name].numel() * 2
        fname = f"model-{key}.safetensors"
        save_file(tensors, str(out / fname), metadata={"format": "pt"})
        weight_map.update({name: fname for name in keys})
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                  "weight_map": weight_map}))
    cfg.save_pretrained(out)
    return out


# --- the steps: each returns its result dict (or raises Skip / an error) --------------------------------
def step_qlora_7b(work: Path, smoke: bool) -> dict:
    from trainer.config import load_config
    from trainer.runs import LOG
    from trainer.stages import run_stage

    device = _device(smoke)
    cuda = device == "cuda"
    shape = LLAMA_SMOKE if smoke else LLAMA_7B
    steps = 3 if smoke else 10
    t0 = time.perf_counter()
    model_dir = _random_llama(work / "llama-7b-shape", shape)
    params = json.loads((model_dir / "model.safetensors.index.json").read_text())["metadata"]["total_size"] // 2
    build_s = time.perf_counter() - t0
    run_dir = work / "qlora-run"
    settings = {"batch_size": 1, "cutoff_len": 512, "lora_r": 8, "gradient_checkpointing": True,
                "bf16": cuda, "optim": "paged_adamw_8bit" if cuda else "adamw_torch (paged optimizers need CUDA)"}
    cfg = load_config({
        "stage": "sft", "name": "gpu-qlora", "output_dir": str(run_dir),
        "model": {"base": str(model_dir), "method": "qlora", "device": device},
        "data": {"datasets": ["covid_sft"], "val_size": 0, "cutoff_len": settings["cutoff_len"],
                 "max_samples": steps * 4},
        "lora": {"r": settings["lora_r"]},
        "training": {"max_steps": steps, "batch_size": 1, "gradient_checkpointing": True, "bf16": cuda,
                     "optim": "paged_adamw_8bit" if cuda else "", "logging_steps": 1, "save_steps": 10_000,
                     "warmup_ratio": 0.0}})
    t1 = time.perf_counter()
    try:
        profile = run_stage(cfg, quiet=True)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)  # 13.5 GB at 7B; rebuilt in a minute or two
    records = [json.loads(line) for line in (run_dir / LOG).read_text().splitlines() if line.strip()]
    rates = [r["tokens_per_s"] for r in records if "tokens_per_s" in r][1:]  # step 1 is the warm-up
    return {"device": device, "shape": shape, "params": params,
            "quant": "nf4 + double quant, bf16 compute", **settings, "steps": profile.metrics.get("steps"),
            "tokens": profile.metrics.get("tokens"), "train_loss": profile.metrics.get("train_loss"),
            "tokens_per_s": round(statistics.median(rates), 1) if rates else None,
            "build_model_s": round(build_s, 1), "load_and_train_s": round(time.perf_counter() - t1, 1),
            **_peak(device)}


def step_covid_recipe(work: Path, smoke: bool) -> dict:
    from medchat.app.cli import main
    from medchat.core.profiles import ProfileStore

    device = _device(smoke)
    tiny = _tiny_model(work)
    # as tests/integration/test_recipe_ranks.py: the recipe's own stages and datasets, a few rows and steps
    small = ["--base", str(tiny), "--device", device, "--bf16", "--cutoff-len", "512", "--batch-size", "2",
             "--max-samples", "8", "--lora-r", "4", "--max-steps", "2", "--save-steps", "100",
             "--set", "ppo.steps=1", "--set", "ppo.rollout_batch_size=2", "--set", "ppo.mini_batch_size=2",
             "--set", "ppo.max_new_tokens=4", "--set", "ppo.ppo_epochs=1", "--quiet"]
    t0 = time.perf_counter()
    rc = main(["train", "recipe", "covid", *small])
    if rc != 0:
        raise RuntimeError(f"medchat train recipe covid exited {rc}")
    store = ProfileStore()
    keep = ("steps", "tokens", "runtime_s", "train_loss", "eval_loss", "accuracy", "reward_mean")
    stages = {name: {k: v for k, v in store.get(name).metrics.items() if k in keep}
              for name in ("covid-sft", "covid-rm", "covid-ppo")}
    return {"device": device, "precision": "bf16", "stages": stages, "seconds": round(time.perf_counter() - t0, 1),
            **_peak(device)}


def step_decode(work: Path, smoke: bool) -> dict:
    from medchat.core.engine import ChatEngine
    from medchat.core.engine.protocol import collect
    from medchat.core.models import LoadOptions, fingerprint
    from medchat.core.profiles import Profile
    from medchat.core.settings import GenerationSettings
    from tests.support.fixtures_models import make_lora_adapter

    device = _device(smoke)
    base = str(_tiny_model(work)) if smoke else "smollm2-135m"  # the product's embedded chat model
    tokens, repeats = (16, 2) if smoke else (128, 5)
    engine = ChatEngine(base, LoadOptions(device=device))
    model_dir = Path(engine.info["dir"])
    adapter = make_lora_adapter(model_dir, work / "decode-lora", r=8, scale=0.01)
    engine.store.install(Profile(name="gpu-lora", base=engine.base_name, base_fingerprint=fingerprint(model_dir),
                                 stage="bench", method="lora"), adapter)
    engine.use("gpu-lora")
    prompt = [{"role": "system", "content": "You are a careful medical assistant."},
              {"role": "user", "content": "What are the common symptoms of influenza, and when should I see a doctor?"}]
    greedy = GenerationSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=tokens)
    rates, produced = [], []
    for i in range(repeats + 1):  # run 0 is the warm-up
        engine.reset()
        t0 = time.perf_counter()
        _, stats = collect(engine.stream(prompt, greedy))
        if i:
            rates.append(stats.completion_tokens / (time.perf_counter() - t0))
            produced.append(stats.completion_tokens)
    return {"device": engine.info.get("device", device), "base": engine.base_name,
            "profile": "gpu-lora (r=8, all-linear)",
            "backend": engine.info["backend"], "decode_mode": engine.info["decode_mode"],
            "dtype": str(engine.info.get("dtype", "")), "tokens": tokens, "produced": produced,
            "tok_s": round(statistics.median(rates), 1), **_peak(device)}


def step_ddp(work: Path, smoke: bool) -> dict:
    from medchat.core.profiles import ProfileStore

    gpus = _gpu_names()
    if len(gpus) < 2:
        raise Skip(f"{len(gpus)} GPU" + ("" if len(gpus) == 1 else "s"))
    tiny = _tiny_model(work)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "bf16", "--dynamo_backend", "no",
           "--main_process_port", str(port), "-m", "medchat", "train", "--stage", "sft", "--name", "ddp-sft",
           "--base", str(tiny), "--dataset", "covid_sft", "--val-size", "0", "--cutoff-len", "512",
           "--batch-size", "4", "--max-steps", "20", "--save-steps", "100", "--bf16", "--quiet"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env={**os.environ, "PYTHONPATH": str(ROOT)})
    sys.stderr.write(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"accelerate launch exited {out.returncode}: {_last_line(out.stderr)}")
    m = ProfileStore().get("ddp-sft").metrics
    return {"gpus": len(gpus), "processes": 2, "precision": "bf16", "steps": m.get("steps"), "tokens": m.get("tokens"),
            "runtime_s": m.get("runtime_s"), "tokens_per_s": round(m["tokens"] / m["runtime_s"], 1)
            if m.get("tokens") and m.get("runtime_s") else None, "wall_s": round(time.perf_counter() - t0, 1)}


# --- running steps in child processes -------------------------------------------------------------
def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def run_step(name: str, work: Path, smoke: bool, models: str | None) -> int:
    """In the child: a throw-away MEDCHAT_HOME (sharing the converted models), run, write WORK/NAME.json."""
    home = work / f"home-{name}"
    home.mkdir(parents=True, exist_ok=True)
    if models and Path(models).is_dir() and not (home / "models").exists():
        os.symlink(models, home / "models")
    os.environ["MEDCHAT_HOME"] = str(home)
    result_file = work / f"{name}.json"
    try:
        result = globals()[f"step_{name}"](work, smoke)
        rc = 0
    except Skip as exc:
        result, rc = {"skipped": str(exc)}, 0
    except BaseException as exc:  # noqa: BLE001 - every failure is a recorded result
        traceback.print_exc()
        result, rc = {"error": _last_line(f"{type(exc).__name__}: {exc}") or type(exc).__name__}, 1
    result_file.write_text(json.dumps(result))
    return rc


def _child(name: str, work: Path, smoke: bool, timeout: int, models: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", name, "--work", str(work), "--models", models]
    cmd += ["--smoke"] if smoke else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result_file, log = work / f"{name}.json", work / f"{name}.log"
    result_file.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT, env=env).returncode
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s", "log": str(log)}
    wall = round(time.perf_counter() - t0, 1)
    if result_file.exists():
        result = json.loads(result_file.read_text())
    else:  # killed (segfault, OOM killer) before it could write
        result = {"error": f"exit {rc}: {_last_line(log.read_text(errors='replace'))}"}
    if rc != 0 and "error" not in result:
        result["error"] = f"exit {rc}"
    return {**result, "wall_s": wall, "log": str(log)}


def machine() -> dict:
    import importlib.metadata as md

    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
            "gpus": _gpu_names(), "python": sys.version.split()[0]}
    for pkg in ("transformers", "peft", "accelerate", "bitsandbytes"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = None
    if torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (the test suite's check of this script)")
    p.add_argument("--out", default=None, help="JSON summary (default: benchmarks/gpu_latest.json; --smoke: in WORK)")
    p.add_argument("--work", default=None, help="scratch dir (default: a new temp dir, kept for the logs)")
    p.add_argument("--only", default="", help="comma list of steps: " + ",".join(STEPS))
    p.add_argument("--step-timeout", type=int, default=3600, help="seconds per step")
    p.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    p.add_argument("--models", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    steps = [s for s in args.only.split(",") if s] or list(STEPS)
    if set(steps) - set(STEPS):
        p.error(f"unknown step(s) {', '.join(sorted(set(steps) - set(STEPS)))}; use {', '.join(STEPS)}")
    work = Path(args.work or tempfile.mkdtemp(prefix="medchat-gpu-check-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.step:
        return run_step(args.step, work, args.smoke, args.models)

    from medchat.core import paths

    summary = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "smoke": args.smoke, "work": str(work),
               "machine": machine(), "steps": {}}
    if not args.smoke and not summary["machine"]["cuda_available"]:
        print("gpu_check: no CUDA here, so the GPU steps are skipped; --smoke runs them on CPU", file=sys.stderr)
    for name in steps:
        print(f"gpu_check: {name}…", file=sys.stderr, flush=True)
        res = summary["steps"][name] = _child(name, work, args.smoke, args.step_timeout, str(paths.models_dir()))
        state = (f"FAILED: {res['error']}" if "error" in res else
                 f"skipped: {res['skipped']}" if "skipped" in res else "ok")
        print(f"gpu_check: {name} {state} ({res.get('wall_s', '?')} s; log {res['log']})", file=sys.stderr, flush=True)
    summary["failed"] = [n for n, r in summary["steps"].items() if "error" in r]
    text = json.dumps(summary, indent=2)
    default = work / "gpu_check.json" if args.smoke else ROOT / "benchmarks" / "gpu_latest.json"
    out = Path(args.out) if args.out else default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    print(f"gpu_check: summary written to {out}", file=sys.stderr)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
