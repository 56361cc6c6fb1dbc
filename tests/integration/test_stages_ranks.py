"""Every stage is rank-aware: with 2 CPU processes (gloo) sft, rm, dpo and ppo each make one run dir and
install one profile, written by the main rank only; the other rank gets None."""

import json
import os
import socket

import pytest

from medchat.core import paths
from medchat.core.profiles import ProfileStore
from test_ppo_helpers import write_pairs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_make_one_run_dir_and_one_profile_per_stage(tiny_model_dir, tmp_path, medchat_home):
    import torch.multiprocessing as mp

    from rank_worker import worker

    data = tmp_path / "data"
    write_pairs(data)
    (data / "sft.json").write_text(json.dumps([{"instruction": f"Question {i}?", "input": "",
                                                "output": f"Answer {i}: rest."} for i in range(8)]))
    home = os.environ["MEDCHAT_HOME"]
    mp.spawn(worker, args=(2, _free_port(), home, str(tiny_model_dir), str(data)), nprocs=2, join=True)

    main, other = (json.loads((medchat_home / f"rank{r}.json").read_text()) for r in (0, 1))
    assert set(main) == {"sft", "rm", "dpo", "ppo"}
    assert all(v is None for v in other.values()), other  # only the main rank installs
    runs = sorted(p.name for p in paths.runs_dir().iterdir() if p.is_dir())
    for stage in ("sft", "rm", "dpo", "ppo"):
        name = f"r-{stage}"
        assert main[stage]["name"] == name and main[stage]["metrics"]["steps"] == 2
        mine = [r for r in runs if r.startswith(f"{name}-")]
        assert len(mine) == 1, runs  # one run dir, shared by both ranks
        status = json.loads((paths.runs_dir() / mine[0] / "status.json").read_text())
        assert status["state"] == "installed" and status["profile"] == name
    store = ProfileStore()
    assert {"r-sft", "r-rm", "r-dpo", "r-ppo"} <= set(store.names())
    assert store.get("r-rm").kind == "reward"
