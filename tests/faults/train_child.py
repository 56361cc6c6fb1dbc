"""A real `medchat train ...` in a child process, with seams that announce (and optionally hold) three
moments so the parent can SIGKILL it there: `python train_child.py PAUSE MEDCHAT_ARGS...`.

PAUSE is `save:NAME:STEP` (the checkpoint of stage NAME at STEP is written to its temp dir, not yet
marked complete and renamed in), `install:NAME` (profile NAME is staged, not yet renamed into place),
`before:NAME` (the previous stages are installed, stage NAME has not started), or `none`.
Each moment prints `at KIND NAME [STEP]` on stdout; the paused one then sleeps until it is killed.
The training itself is untouched: the seams only print and wait.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path


def at(pause: str, *where) -> None:
    tag = ":".join(str(w) for w in where)
    print("at " + " ".join(str(w) for w in where), flush=True)
    if tag == pause:
        time.sleep(120)  # the parent kills it here; if it never does, the child ends and the test fails


def install_seams(pause: str) -> None:
    import trainer.stages
    from medchat.core import paths
    from trainer.runs import Run

    save = Run.save_checkpoint

    def save_checkpoint(self, step, write, **kw):
        name = self.config().name

        def held(tmp):
            write(tmp)
            at(pause, "save", name, step)

        return save(self, step, held, **kw)

    Run.save_checkpoint = save_checkpoint

    staging = paths.staging_dir

    @contextmanager
    def staging_dir(final):
        with staging(final) as tmp:
            yield tmp
            if Path(final).parent == paths.profiles_dir():
                at(pause, "install", Path(final).name)

    paths.staging_dir = staging_dir  # medchat.core.profiles reads it as paths.staging_dir at call time

    run_stage = trainer.stages.run_stage

    def announced(cfg, **kw):  # trainer.recipes imports run_stage at call time, so it gets this one
        at(pause, "before", cfg.name)
        return run_stage(cfg, **kw)

    trainer.stages.run_stage = announced


if __name__ == "__main__":
    install_seams(sys.argv[1])
    from medchat.app.cli import main

    sys.exit(main(sys.argv[2:]))
