"""The process the fault tests kill: `python child.py SCENARIO WORKDIR SEED`.

Each scenario imports only the store code under test (no torch, no models), prints "ready", then
repeats its operation until SIGKILL. Before each operation it appends its intent to WORKDIR/intent.log
and "done" after, so the checker knows what was in flight. Content is tagged (source, version,
generation) so the checker can tell old from new and spot a mix of the two.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

PROFILE_NAMES = ["alpha", "beta", "gamma", "delta"]
KB_NAME = "faultkb"
KB_DIM = 4


def ready() -> None:
    print("ready", flush=True)


class Intent:
    def __init__(self, work: Path):
        self.fh = open(work / "intent.log", "a", encoding="utf-8")

    def __call__(self, line: str) -> None:
        self.fh.write(line + "\n")
        self.fh.flush()  # the kernel has it once write() returns: SIGKILL cannot lose it


# --- 1. profiles ---------------------------------------------------------------------------------
def profiles(work: Path, rng: random.Random) -> None:
    from medchat.core.errors import UserError
    from medchat.core.profiles import Profile, ProfileStore

    store = ProfileStore()
    intent = Intent(work)
    ready()
    while True:
        have = [n for n in store.names() if n != "base"]
        free = [n for n in PROFILE_NAMES if n not in have]
        src = rng.randrange(3)
        ops = (["install"] if free else []) + (["replace", "remove"] if have else []) + \
              (["rename"] if have and free else [])
        op = rng.choice(ops)
        try:
            if op in ("install", "replace"):
                name = rng.choice(free if op == "install" else have)
                parents = [p for p in have if p != name]
                chain = [rng.choice(parents)] if parents and op == "install" and rng.random() < 0.4 else []
                if op == "replace":
                    chain = store.get(name).chain[:-1]  # keep its place in any stack
                intent(f"{op} {name} src-{src}")
                store.install(Profile(name=name, chain=chain, stage="sft", method="lora", allow_pickle=True,
                                      description=f"src-{src}"), work / f"src-{src}", overwrite=True)
            elif op == "remove":
                name = rng.choice(have)
                intent(f"remove {name}")
                store.remove(name)
            else:
                old, new = rng.choice(have), rng.choice(free)
                intent(f"rename {old} {new}")
                store.rename(old, new)
        except UserError:  # e.g. removing a profile another one stacks on: refused, nothing changed
            pass
        intent("done")


def make_adapter_sources(work: Path) -> None:
    """Three fake LoRA dirs (pickled weights: checking safetensors would import torch), each tagged."""
    for k in range(3):
        src = work / f"src-{k}"
        src.mkdir(parents=True, exist_ok=True)
        (src / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4}))
        (src / "adapter_model.bin").write_bytes(bytes([k]) * 200_000)
        for i in range(8 + 4 * k):  # sources differ in file count too, so a mix shows
            (src / f"part-{i}.txt").write_text(f"src-{k}\n" * 2000)
        (src / "tag.txt").write_text(f"src-{k}")


# --- 2. knowledge base ---------------------------------------------------------------------------
class NoBM25:
    retriever = None  # an empty BM25 index: `store.write` skips it, `store.read` would rebuild it


def kb_write_next() -> int:
    """One KB change as kb.knowledge does it: lock, sweep, bump the version, write the whole folder."""
    import numpy as np

    from kb import store
    from kb.chunking import Chunk
    from kb.index import DenseIndex

    folder = store.kb_path(KB_NAME)
    with store.lock(KB_NAME):
        store.sweep_leftovers(KB_NAME)
        try:
            version = int(store.read_manifest(folder)["version"]) + 1
        except FileNotFoundError:
            version = 1
        n = 3 + version % 11
        chunks = {i: Chunk(f"c{i}", f"v{version} chunk {i} " + "text " * 400, "src.md", "Title", "")
                  for i in range(n)}
        dense = DenseIndex(KB_DIM)
        dense.add(np.full((n, KB_DIM), version, dtype="float32"), list(chunks))
        manifest = {"format": store.FORMAT, "version": version, "embedder": {"id": "fake", "dim": KB_DIM},
                    "counts": {"chunks": n}, "sources": [], "updated": store.now()}
        store.write(folder, manifest, chunks, dense, NoBM25())
    return version


def kb(work: Path, rng: random.Random) -> None:
    kb_write_next()  # imports faiss and numpy before "ready", so kills land in writes
    ready()
    while True:
        kb_write_next()


# --- 3. history during a streamed reply ----------------------------------------------------------
def history(work: Path, rng: random.Random) -> None:
    from tests.support.fake_engine import FakeEngine
    from medchat.app.history.store import HistoryStore
    from medchat.app.session import ChatSession

    hs = HistoryStore()
    session = ChatSession(FakeEngine(delay=rng.uniform(0.001, 0.006)), hs, kb=None,
                          triage=lambda text: None, key_facts=False)
    ready()
    for i in range(10_000):
        for _event in session.send(f"question {rng.randrange(10**6)} number {i} about a fever that "
                                   + "lasts " * rng.randrange(1, 30)):
            pass


# --- 4. evaluation output ------------------------------------------------------------------------
def eval_results(work: Path, rng: random.Random) -> None:
    from medchat.core import paths

    results = work / "results"
    run = results / "run"
    try:
        gen = json.loads((run / "metrics.json").read_text())["gen"]
    except FileNotFoundError:
        gen = 0
    ready()
    while True:
        gen += 1
        files = 2 + gen % 5
        with paths.staging_dir(run) as tmp:
            for i in range(files):
                (tmp / f"predictions-{i}.jsonl").write_text(f'{{"gen": {gen}}}\n' * 3000)
            (tmp / "metrics.json").write_text(json.dumps({"gen": gen, "files": files}))
        paths.atomic_write_text(results / "summary.json", json.dumps({"gen": gen, "pad": "x" * 200_000}))


# --- 5. training checkpoints (the run store, with a stand-in for the weights) --------------------
def checkpoints(work: Path, rng: random.Random) -> None:
    from trainer.runs import Run

    run = Run(work / "run")
    latest = run.latest_checkpoint()  # where --resume would start
    step = int((latest / "COMPLETE").read_text()) if latest else 0

    def write(tmp: Path, step: int) -> None:  # the shape of trainer/stages/loop.py's write()
        (tmp / "adapter").mkdir()
        (tmp / "adapter" / "adapter_model.safetensors").write_bytes(step.to_bytes(4, "little") * 100_000)
        (tmp / "optimizer.pt").write_bytes(step.to_bytes(4, "little") * 200_000)
        (tmp / "state.json").write_text(json.dumps({"step": step}))

    ready()
    while True:
        step += 1
        run.save_checkpoint(step, lambda tmp: write(tmp, step))


SCENARIOS = {"profiles": profiles, "kb": kb, "history": history, "eval": eval_results, "checkpoints": checkpoints}

if __name__ == "__main__":
    scenario, workdir, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    SCENARIOS[scenario](workdir, random.Random(seed))
