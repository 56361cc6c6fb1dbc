"""trainer.runs: run dirs, log, plot, atomic checkpoints; trainer.install preflight."""

import json

import pytest

from medchat.core import paths
from medchat.core.errors import UserError
from trainer.config import load_config
from trainer.install import preflight
from trainer.runs import Run


def test_create_saves_config_and_finds_latest():
    cfg = load_config({"name": "covid-x", "learning_rate": 1e-3})
    run = Run.create(cfg)
    assert run.dir.parent == paths.runs_dir() and run.dir.name.startswith("covid-x-")
    assert run.config() == cfg
    again = Run.create(cfg)
    assert again.dir != run.dir
    assert Run.latest_for("covid-x").dir in (run.dir, again.dir)
    cfg.training.resume = "latest"
    assert Run.for_resume(cfg) is not None
    cfg.name, cfg.training.resume = "other", "latest"
    with pytest.raises(UserError, match="no earlier run"):
        Run.for_resume(cfg)


def test_log_truncate_and_plot():
    run = Run.create(load_config({"name": "p"}))
    for step in (5, 10, 15):
        run.log({"step": step, "loss": 3.0 / step, "lr": 1e-4, "tokens_per_s": 100.0,
                 **({"eval_loss": 0.5} if step == 10 else {})})
    with open(run.log_path, "a") as fh:
        fh.write('{"step": 20, "lo')  # a line cut by a kill
    assert [r["step"] for r in run.records()] == [5, 10, 15]
    run.truncate_log(10)
    assert [r["step"] for r in run.records()] == [5, 10]
    png = run.plot()
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoints_are_atomic_and_pruned():
    run = Run.create(load_config({"name": "c"}))

    def write(tmp, step):
        (tmp / "state.json").write_text(json.dumps({"step": step}))

    for step in (3, 6, 9):
        run.save_checkpoint(step, lambda tmp, s=step: write(tmp, s))
    assert [p.name for p in run.checkpoints()] == ["step-00000006", "step-00000009"]

    def crash(tmp):
        (tmp / "state.json").write_text("{half")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        run.save_checkpoint(12, crash)
    latest = run.latest_checkpoint()
    assert latest.name == "step-00000009" and json.loads((latest / "state.json").read_text()) == {"step": 9}
    assert not list(run.checkpoints_dir.glob(".tmp-*"))


def test_preflight_refuses_bad_or_taken_names(lora_a):
    from medchat.core.profiles import Profile, ProfileStore

    with pytest.raises(UserError, match="--name is required"):
        preflight(load_config({}))
    with pytest.raises(UserError, match="invalid profile name"):
        preflight(load_config({"name": "Bad Name"}))
    ProfileStore().install(Profile(name="taken", chain=["taken"]), lora_a)
    with pytest.raises(UserError, match="already exists"):
        preflight(load_config({"name": "taken"}))
    preflight(load_config({"name": "free"}))
