"""`medchat bench` decode figure against llama.cpp (llama-cpp-python) on the same GGUF, threads and prompt.

llama-cpp-python is never a dependency of medchat: the figure is measured only when some Python can
`import llama_cpp` (this interpreter, or the one passed as `medchat bench --llamacpp-python PATH`);
otherwise the keys carry a skip note. It runs in a child process because its repacked-weights path
(`use_extra_bufts`, llama.cpp's default) has crashed with a segfault on some CPUs: the child is tried
with the default (repacked) weights first, then once more with `use_extra_bufts=False` (plain weights),
and `decode.llamacpp_config` records which configuration produced the figure.

What is compared: llama.cpp gets the exact prompt token ids medchat decodes (the bench prompt rendered
by medchat's chat template and tokenizer; the GGUF vocabulary is the same) and greedily decodes exactly
`tokens` ids (EOS does not stop it), prefill included, median of `repeats` after one warm-up run. It
runs the plain GGUF (Q4_1 weights) without the bench LoRA profile that is active in medchat's figure
(a PEFT adapter would need a conversion to a GGUF LoRA first).
"""

from __future__ import annotations

import importlib.util
import json
import signal
import statistics
import subprocess
import sys

SKIP_NOTE = "llama-cpp-python not importable; pass --llamacpp-python PATH"
LORA_NOTE = ("llama.cpp decodes the plain GGUF (Q4_1 weights, no LoRA); medchat's figure has the bench LoRA "
             "profile active; same prompt token ids, threads and token count, prefill included")

CHILD_SCRIPT = r"""
import json, statistics, sys, time
a = json.loads(sys.argv[1])
import llama_cpp
from llama_cpp import llama_cpp as C
if a["plain"]:
    _default = C.llama_model_default_params
    def _plain():
        p = _default()
        assert "use_extra_bufts" in dict(type(p)._fields_), "this llama-cpp-python has no use_extra_bufts"
        p.use_extra_bufts = False
        return p
    C.llama_model_default_params = _plain
llm = llama_cpp.Llama(model_path=a["gguf"], n_threads=a["threads"], n_threads_batch=a["threads"],
                      n_ctx=a["n_ctx"], n_batch=512, verbose=False, seed=0)
def run():
    out = []
    llm.reset()  # a cold prompt every run, as medchat's figure (no KV prefix reuse)
    t0 = time.perf_counter()
    for tok in llm.generate(a["ids"], top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
        out.append(tok)
        if len(out) == a["tokens"]:
            break
    return len(out) / (time.perf_counter() - t0), out
run()  # warm-up
rates = []
for _ in range(a["repeats"]):
    r, out = run()
    rates.append(r)
print(json.dumps({"tok_s": statistics.median(rates), "n_tokens": len(out), "ids": out,
                  "version": getattr(llama_cpp, "__version__", "?")}))
"""


def find_python(explicit: str | None = None) -> str | None:
    """A Python that can import llama_cpp: the explicit one (checked), else this interpreter, else None."""
    if explicit:
        try:
            ok = subprocess.run([explicit, "-c", "import llama_cpp"], capture_output=True, timeout=120).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        return explicit if ok else None
    return sys.executable if importlib.util.find_spec("llama_cpp") is not None else None


def _failure(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode < 0:
        try:
            return signal.Signals(-proc.returncode).name
        except ValueError:
            return f"signal {-proc.returncode}"
    tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
    return f"exit {proc.returncode}: {tail[0][:200]}"


def _child(python: str, args: dict, timeout: float) -> tuple[dict | None, str]:
    try:
        proc = subprocess.run([python, "-c", CHILD_SCRIPT, json.dumps(args)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    if proc.returncode == 0:
        for line in reversed(proc.stdout.strip().splitlines()):
            try:
                return json.loads(line), ""
            except ValueError:
                continue
        return None, "no JSON on stdout"
    return None, _failure(proc)


def run_llamacpp(python: str, gguf: str, ids: list[int], tokens: int, threads: int, repeats: int = 3,
                 timeout: float = 900) -> dict:
    """Repacked weights first, then plain ones; {tok_s, n_tokens, config, ids, version} or {error}."""
    args = {"gguf": gguf, "ids": list(ids), "tokens": tokens, "threads": threads, "repeats": max(1, repeats),
            "n_ctx": len(ids) + tokens + 16, "plain": False}
    got, why = _child(python, args, timeout)
    if got is not None:
        return {**got, "config": "repacked"}
    got, why2 = _child(python, {**args, "plain": True}, timeout)
    if got is not None:
        return {**got, "config": f"plain (use_extra_bufts=False; repacked path crashed: {why})"}
    return {"error": f"repacked: {why}; plain: {why2}"}


def gguf_for(base: str | None) -> str | None:
    from medchat.core.models import _EMBEDDED, DEFAULT_BASE, embedded_gguf

    name = base or DEFAULT_BASE
    if name in _EMBEDDED:
        path = embedded_gguf(name)
        return str(path) if path else None
    return base if base and base.endswith(".gguf") else None


def ratio_figures(medchat_tok_s: float, result: dict) -> dict:
    """The `decode.*` keys for the report from a run_llamacpp() result."""
    if "error" in result:
        return {"vs_llamacpp": None, "llamacpp_note": f"llama.cpp run failed ({result['error']})"}
    tok_s = float(result["tok_s"])
    return {"vs_llamacpp": round(medchat_tok_s / tok_s, 2) if tok_s > 0 else None,
            "llamacpp_tok_s": round(tok_s, 1), "llamacpp_config": result["config"],
            "llamacpp_version": result.get("version"), "llamacpp_note": LORA_NOTE}


def compare(engine, prompt: list[dict], tokens: int, repeats: int, medchat_tok_s: float,
            python: str | None = None, base: str | None = None) -> dict:
    """`decode.vs_llamacpp` and friends for `medchat bench`, or a skip note."""
    import torch

    py = find_python(python)
    if py is None:
        note = SKIP_NOTE if not python else f"{python} cannot import llama_cpp; {SKIP_NOTE}"
        return {"vs_llamacpp": None, "llamacpp_note": note}
    gguf = gguf_for(base)
    if gguf is None:
        return {"vs_llamacpp": None, "llamacpp_note": f"no GGUF for base {base!r}; llama.cpp comparison skipped"}
    threads = torch.get_num_threads()
    print(f"bench: llama.cpp decode ({py}, {threads} threads)…", file=sys.stderr, flush=True)
    result = run_llamacpp(py, gguf, engine.prompt_ids(prompt, tokens), tokens, threads, repeats)
    return {**ratio_figures(medchat_tok_s, result), "llamacpp_threads": threads}
