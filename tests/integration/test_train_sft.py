"""SFT end to end on the tiny model: loss falls, the run dir is complete, the profile changes answers."""

import json

import pytest
import torch

from medchat.app.cli import main
from medchat.core.profiles import ProfileStore
from trainer.config import load_config
from trainer.stages import run_stage

FACTS = [("What helps a fever?", "Drink fluids and rest."),
         ("What causes COVID-19?", "COVID-19 is caused by a coronavirus."),
         ("Chest pain with sweating?", "Call emergency services.")]


@pytest.fixture
def mem_file(tmp_path):
    path = tmp_path / "mem.json"
    path.write_text(json.dumps([{"instruction": q, "input": "", "output": a} for q, a in FACTS]))
    return path


def _cfg(base, data, name, **training):
    return load_config({"stage": "sft", "name": name, "model": {"base": str(base)},
                        "data": {"datasets": [str(data)], "val_size": 0},
                        "lora": {"r": 8, "dropout": 0.0},
                        "training": {"max_steps": 30, "learning_rate": 5e-3, "logging_steps": 5,
                                     "save_steps": 10, **training}})


def test_sft_memorizes_and_installs_a_profile_that_changes_answers(tiny_model_dir, mem_file, capsys):
    from medchat.core.engine import ChatEngine
    from medchat.core.models import fingerprint
    from medchat.core.settings import GenerationSettings

    profile = run_stage(_cfg(tiny_model_dir, mem_file, "mem"), quiet=True)
    assert "installed profile 'mem'" in capsys.readouterr().out

    prof = ProfileStore().get("mem")
    assert prof.chain == ["mem"] and prof.stage == "sft" and prof.method == "lora" and prof.kind == "chat"
    assert prof.base == str(tiny_model_dir) and prof.base_fingerprint == fingerprint(tiny_model_dir)
    assert prof.datasets[0]["rows"] == 3 and len(prof.datasets[0]["sha256"]) == 64
    assert prof.metrics["steps"] == 30 and prof.metrics["tokens"] > 0 and prof.created
    assert prof.generation == {}  # chat's own sampling defaults
    assert profile.name == "mem"

    run_dir = next(p for p in (prof.path.parent.parent / "runs").iterdir() if p.name.startswith("mem-"))
    records = [json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]
    assert {"step", "loss", "lr", "tokens_per_s"} <= set(records[0])
    assert records[-1]["loss"] < records[0]["loss"] * 0.7
    assert (run_dir / "loss.png").exists() and (run_dir / "config.yaml").exists()
    assert json.loads((run_dir / "status.json").read_text())["state"] == "installed"
    assert load_config(run_dir / "config.yaml").name == "mem"

    engine = ChatEngine(str(tiny_model_dir))
    greedy = GenerationSettings(temperature=0.0, max_new_tokens=16)
    ask = [[{"role": "user", "content": q}] for q, _ in FACTS]
    before = [engine.generate(m, greedy) for m in ask]
    engine.use("mem")
    after = [engine.generate(m, greedy) for m in ask]
    assert after != before
    assert sum(a.strip() == fact for a, (_, fact) in zip(after, FACTS)) >= 2, after


def test_cli_train_with_eval_installs_the_best_adapter(tiny_model_dir, mem_file, medchat_home, capsys):
    from safetensors.torch import load_file

    rc = main(["train", "--stage", "sft", "--base", str(tiny_model_dir), "--dataset", str(mem_file),
               "--val-dataset", str(mem_file), "--name", "mem-eval", "--max-steps", "12", "--eval-steps", "4",
               "--learning-rate", "5e-3", "--lora-r", "4", "--set", "lora.dropout=0", "--chat-temperature", "0",
               "--quiet"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "installed profile 'mem-eval'" in out.out and "eval loss" in out.out
    prof = ProfileStore().get("mem-eval")
    assert prof.generation == {"temperature": 0.0}  # chat answers greedily with it
    run_dir = next((medchat_home / "runs").glob("mem-eval-*"))
    evals = [json.loads(x)["eval_loss"] for x in (run_dir / "trainer_log.jsonl").read_text().splitlines()
             if "eval_loss" in json.loads(x)]
    assert len(evals) == 3 and prof.metrics["eval_loss"] == pytest.approx(min(evals), abs=1e-5)
    installed = load_file(prof.path / "adapter" / "adapter_model.safetensors")
    best = load_file(run_dir / "best" / "adapter_model.safetensors")
    assert installed.keys() == best.keys() and all((installed[k] == best[k]).all() for k in best)
    assert json.loads((prof.path / "adapter" / "adapter_config.json").read_text())["r"] == 4


def test_cli_errors_are_one_line(tiny_model_dir, mem_file, capsys):
    assert main(["train", "--dataset", str(mem_file), "--base", str(tiny_model_dir)]) == 2
    assert "--name is required" in capsys.readouterr().err
    assert main(["train", "--name", "x", "--base", str(tiny_model_dir)]) == 2
    assert "no dataset given" in capsys.readouterr().err
    assert main(["train", "--name", "x", "--dataset", "nope_nope"]) == 1  # runtime: no such dataset
    assert "unknown dataset 'nope_nope'" in capsys.readouterr().err
    assert main(["train", "--name", "x", "--dataset", str(mem_file), "--base", str(tiny_model_dir),
                 "--chat-temperature", "9"]) == 1
    assert "--chat-temperature must be -1" in capsys.readouterr().err


def test_pt_stage_packs_text_and_sft_packing_option(tiny_model_dir, tmp_path, medchat_home):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"Fact {i}: fever is a raised body temperature." for i in range(12)) + "\n")
    cfg = load_config({"stage": "pt", "name": "pt-x", "model": {"base": str(tiny_model_dir)},
                       "data": {"datasets": [str(corpus)], "val_size": 0.2, "cutoff_len": 64},
                       "lora": {"r": 4}, "training": {"max_steps": 3, "batch_size": 2, "logging_steps": 1}})
    prof = run_stage(cfg, quiet=True)
    assert prof.stage == "pt" and prof.metrics["val_samples"] >= 2 and "eval_loss" in prof.metrics
    # 12 lines, 2 held out for eval; pt packs them into rows of <= 64 tokens by default
    assert prof.metrics["train_samples"] == 10 and prof.metrics["tokens"] > 0
    # sft with --packing: one row holds all three short samples, so one step of batch 1 sees them all
    mem = tmp_path / "mem.json"
    mem.write_text(json.dumps([{"instruction": q, "input": "", "output": a} for q, a in FACTS]))
    packed = _cfg(tiny_model_dir, mem, "sft-packed", max_steps=1, batch_size=1)
    packed.data.packing = True
    plain = _cfg(tiny_model_dir, mem, "sft-plain", max_steps=1, batch_size=1)
    p1, p2 = run_stage(packed, quiet=True), run_stage(plain, quiet=True)
    assert p1.metrics["tokens"] > 2 * p2.metrics["tokens"]


def test_the_loop_checks_the_heap_after_every_step_and_evaluation(tiny_model_dir, tmp_path, monkeypatch):
    from trainer.stages import loop

    calls = []

    class Counting(loop.HeapGuard):
        def after_step(self):
            calls.append(self)
            super().after_step()

    monkeypatch.setattr(loop, "HeapGuard", Counting)
    data = tmp_path / "qa.json"
    data.write_text(json.dumps([{"instruction": f"question {i}?", "input": "", "output": f"answer {i}."}
                                for i in range(10)]))
    cfg = load_config({"stage": "sft", "name": "heap", "model": {"base": str(tiny_model_dir)},
                       "data": {"datasets": [str(data)], "val_size": 0.2},
                       "lora": {"r": 4}, "training": {"max_steps": 6, "eval_steps": 3, "save_steps": 100}})
    run_stage(cfg, quiet=True)
    assert len(calls) == 6 + 2  # six steps, evaluations at steps 3 and 6
    assert len({id(c) for c in calls}) == 1


def test_one_sample_micro_batches_make_the_same_update_as_one_padded_batch(tiny_model_dir, tmp_path):
    """Why the doctor recipe may run batch 1 x grad_accum 4 to save memory: the loss is normalised over
    the trained tokens of the whole step, and padding is masked, so the adapter comes out the same."""
    from safetensors.torch import load_file

    data = tmp_path / "uneven.json"  # answers of very different lengths: batch 4 pads heavily
    rows = [{"instruction": f"question {i}?", "input": "", "output": " ".join(["word"] * (1 + 7 * i))} for i in range(8)]
    data.write_text(json.dumps(rows))
    adapters = []
    for name, bs, accum in (("padded", 4, 1), ("one-by-one", 1, 4)):
        cfg = load_config({"stage": "sft", "name": name, "model": {"base": str(tiny_model_dir)},
                           "data": {"datasets": [str(data)], "val_size": 0}, "lora": {"r": 4, "dropout": 0.0},
                           "training": {"max_steps": 2, "batch_size": bs, "grad_accum": accum,
                                        "learning_rate": 5e-3, "save_steps": 100}})
        prof = run_stage(cfg, quiet=True)
        assert prof.metrics["steps"] == 2
        adapters.append(load_file(prof.path / "adapter" / "adapter_model.safetensors"))
    padded, single = adapters
    assert padded.keys() == single.keys()
    moved = [key for key in padded if padded[key].abs().max() > 0 and "lora_B" in key]
    assert moved  # the two steps changed the adapter, so agreement below is not two untouched copies
    for key in padded:
        torch.testing.assert_close(padded[key], single[key], atol=1e-5, rtol=1e-3)
