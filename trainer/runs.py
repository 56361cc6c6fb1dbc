"""Run directories: config, log, status, atomic checkpoints (the loss plot: trainer/plots.py; the
progress bar: trainer/progress.py, re-exported here).

Public API (shared by every stage):

    run = Run.create(cfg)                  # runs_dir()/<name>-<YYYYmmdd-HHMMSS>/, writes config.yaml
    run = Run.open(path) / Run.latest_for(name) / Run.for_resume(cfg)  # cfg.training.resume
    run.config() -> TrainConfig            # the saved, resolved config
    run.log({"step": 5, "loss": 1.2, "lr": 1e-4, "tokens_per_s": 900.0, "eval_loss": ...})
    run.records() / run.truncate_log(step) # trainer_log.jsonl (one JSON per logging step)
    run.plot() -> Path                     # loss.png (train + eval loss), matplotlib Agg
    run.save_checkpoint(step, write)       # write(tmp_dir) fills a temp dir, then it is renamed in
    run.latest_checkpoint() -> Path|None   # checkpoints/step-00000123 (complete ones only)
    with run.guard(resume_cmd, say):       # status interrupted/failed on the way out, loss plot always
    run.set_status("running"|"interrupted"|"finished"|"installed"|"failed", **extra)  # status.json
    with TrainProgress(total_steps) as bar: bar.update(step, loss=, lr=, tokens_per_s=, eval_loss=)

Layout: config.yaml, status.json, trainer_log.jsonl, loss.png, checkpoints/step-N/, best/ (adapter
with the lowest eval loss), final/ (last adapter), summary.json.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from medchat.core import paths
from medchat.core.errors import UserError
from trainer.progress import TrainProgress  # noqa: F401 - the stages import it from here

LOG = "trainer_log.jsonl"
KEEP_CHECKPOINTS = 2


class Run:
    def __init__(self, path: Path):
        self.dir = Path(path)

    # --- finding / creating ------------------------------------------------------------------
    @classmethod
    def create(cls, cfg) -> "Run":
        if cfg.output_dir:
            path = Path(cfg.output_dir).expanduser()
        else:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            path = paths.runs_dir() / f"{cfg.name or cfg.stage}-{stamp}"
            n = 1
            while path.exists():  # two runs in the same second
                n += 1
                path = paths.runs_dir() / f"{cfg.name or cfg.stage}-{stamp}-{n}"
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        paths.atomic_write_text(path / "config.yaml", cfg.to_yaml())
        run.set_status("created")
        return run

    @classmethod
    def open(cls, path) -> "Run":
        path = Path(path).expanduser()
        if not (path / "config.yaml").exists():
            raise UserError(f"'{path}' is not a training run directory (no config.yaml)")
        return cls(path)

    @classmethod
    def latest_for(cls, name: str) -> "Run | None":
        found = [p for p in paths.runs_dir().glob(f"{name}-*") if (p / "config.yaml").exists()]
        found = [p for p in found if cls(p).config().name == name]
        return cls(max(found, key=lambda p: p.stat().st_mtime)) if found else None

    @classmethod
    def for_resume(cls, cfg) -> "Run | None":
        """The run to continue for cfg.training.resume ('' = none, 'latest' = newest run of cfg.name)."""
        spec = cfg.training.resume
        if not spec:
            return None
        if spec in ("latest", "true", "1", "yes"):
            run = cls.latest_for(cfg.name) if cfg.name else None
            if run is None:
                raise UserError(f"--resume: no earlier run of '{cfg.name}' under {paths.runs_dir()}; "
                                "start without --resume")
            return run
        return cls.open(spec)

    def config(self):
        from trainer.config import load_config

        return load_config(self.dir / "config.yaml")

    # --- status / summary --------------------------------------------------------------------
    def status(self) -> dict:
        try:
            return json.loads((self.dir / "status.json").read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def set_status(self, state: str, **extra) -> None:
        data = {**self.status(), **extra, "state": state,
                "updated": _dt.datetime.now().isoformat(timespec="seconds")}
        paths.atomic_write_text(self.dir / "status.json", json.dumps(data, indent=1))

    @contextmanager
    def guard(self, resume_cmd: str, say: Callable[[str], None], main: bool = True):
        """Wrap a stage's training: Ctrl-C marks the run interrupted (keeping the last checkpoint)
        and tells how to continue; any other failure marks it failed; the loss plot is always drawn.
        `main` is False on non-main DDP ranks, which must not write the run dir."""
        try:
            yield
        except KeyboardInterrupt:
            if main:
                last = self.latest_checkpoint()
                self.set_status("interrupted", checkpoint=str(last) if last else None)
                say(f"interrupted; checkpoint {last.name if last else '(none yet)'} kept. Continue with: {resume_cmd}")
            raise
        except BaseException:
            if main:
                self.set_status("failed")
            raise
        finally:
            if main:
                self.plot()

    def write_summary(self, summary: dict) -> None:
        paths.atomic_write_text(self.dir / "summary.json", json.dumps(summary, indent=1, default=str))

    # --- log -------------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.dir / LOG

    def log(self, record: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=float) + "\n")
            fh.flush()

    def records(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill
                continue
        return out

    def truncate_log(self, step: int) -> None:
        """Drop records after `step` (used on resume, so the log reads as one uninterrupted run)."""
        kept = [r for r in self.records() if r.get("step", 0) <= step]
        paths.atomic_write_text(self.log_path, "".join(json.dumps(r) + "\n" for r in kept))

    def plot(self) -> Path | None:
        """loss.png from the log (train and eval loss); None before the first logged loss."""
        from trainer.plots import loss_chart

        return loss_chart(self.records(), self.dir / "loss.png", title=self.dir.name)

    # --- checkpoints -------------------------------------------------------------------------------
    @property
    def checkpoints_dir(self) -> Path:
        return self.dir / "checkpoints"

    def save_checkpoint(self, step: int, write: Callable[[Path], None], keep: int = KEEP_CHECKPOINTS) -> Path:
        """Fill a temp dir with `write(tmp)`, then rename it to step-N: a kill leaves the last one whole."""
        root = self.checkpoints_dir
        root.mkdir(parents=True, exist_ok=True)
        final = root / f"step-{step:08d}"
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-step-{step:08d}-"))
        try:
            write(tmp)
            (tmp / "COMPLETE").write_text(str(step))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in self.checkpoints()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def checkpoints(self) -> list[Path]:
        root = self.checkpoints_dir
        if not root.exists():
            return []
        for junk in root.glob(".tmp-step-*"):  # leftovers of a kill mid-save
            shutil.rmtree(junk, ignore_errors=True)
        return sorted(p for p in root.glob("step-*") if (p / "COMPLETE").exists())

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def replace_dir(self, name: str, write: Callable[[Path], None]) -> Path:
        """Atomically (re)write a sub dir such as best/ or final/."""
        with paths.staging_dir(self.dir / name) as tmp:
            write(tmp)
        return self.dir / name
