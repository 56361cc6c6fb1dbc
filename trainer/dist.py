"""Rank awareness for every stage: which process this is, its device, and the few collectives we need.

    d = Dist.from_env(cfg.model.device)   # joins the process group when launched with WORLD_SIZE > 1
    d.rank, d.world, d.is_main, d.device  # device "cuda:<local rank>" on GPUs, "cpu" otherwise
    d.barrier()                           # no-op in one process
    d.mean({"loss": 1.2, ...})            # all-reduce mean of float metrics over ranks
    d.broadcast(obj)                      # the main rank's value on every rank (e.g. the run dir)
    d.gather(obj)                         # every rank's value, in rank order (e.g. per-rank PPO state)
    d.sync_grads(params)                  # average gradients by hand (a model not wrapped in DDP)

The rule every stage follows: only the main rank creates the run dir, writes files and installs the
profile; the others wait at a barrier. `accelerate launch` and `torchrun` both set RANK, WORLD_SIZE
and LOCAL_RANK; if accelerate (pt/sft, trl's DPO) joined the group first we reuse it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str | None = None) -> "Dist":
        from medchat.core.models import pick_device

        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
        dev = pick_device(device or None)
        if world > 1 and dev == "cuda":
            dev = f"cuda:{local}"
        d = cls(rank=rank, world=world, local_rank=local, device=dev)
        if world > 1:
            d._init_group()
        return d

    def _init_group(self) -> None:
        import torch.distributed as td

        if not td.is_initialized():
            if self.device.startswith("cuda"):
                import torch

                torch.cuda.set_device(self.local_rank)
            td.init_process_group("nccl" if self.device.startswith("cuda") else "gloo")

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as td

            td.barrier()

    def broadcast(self, obj):
        if self.world == 1:
            return obj
        import torch.distributed as td

        box = [obj if self.is_main else None]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """[rank 0's obj, rank 1's obj, ...] on every rank."""
        if self.world == 1:
            return [obj]
        import torch.distributed as td

        out = [None] * self.world
        td.all_gather_object(out, obj)
        return out

    def mean(self, metrics: dict) -> dict:
        """All-reduce mean of the float/int entries (others pass through unchanged)."""
        if self.world == 1:
            return dict(metrics)
        import torch
        import torch.distributed as td

        keys = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not keys:
            return dict(metrics)
        t = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64,
                         device=self.device if self.device.startswith("cuda") else "cpu")
        td.all_reduce(t)
        out = dict(metrics)
        out.update({k: v / self.world for k, v in zip(keys, t.tolist())})
        return out

    def sync_grads(self, params) -> None:
        """Average the gradients of `params` over ranks (for stages that do not wrap the model in DDP)."""
        if self.world == 1:
            return
        import torch.distributed as td

        for p in params:
            if p.grad is not None:
                td.all_reduce(p.grad)
                p.grad.div_(self.world)
