"""The one training loop: pt and sft (causal loss), rm (pairwise loss), ppo (whole steps: `steps=`).

Why a small custom loop on `accelerate` instead of HF Trainer: we need exact control of four things
Trainer makes awkward - a block-diagonal 4D mask for packed rows, loss normalised by trained tokens
over the whole accumulated (and distributed) step, checkpoints written to a temp dir and renamed,
and bit-for-bit resume. Resume is exact because the data order is a pure function of (seed, epoch)
and the RNG is re-seeded from (seed, step, rank) before every step, so nothing else needs restoring
than adapter, optimizer and scheduler. `accelerate launch` gives DDP unchanged (tested with gloo).

    result = TrainLoop(cfg, tm, run, train_samples, val_samples, accelerator, packing=True).fit()
    result = TrainLoop(cfg, tm, run, train_pairs, val_pairs, acc, make_batch=f, loss_fn=g, count_fn=len_of,
                       ddp=False, keep_best=False).fit()   # another stage's items, batch and loss

A stage's loss_fn(model, batch) returns the *sum* of its loss over the batch (normalised by the
global count_fn over the step), or (sum, {metric: sum}) for extra metrics logged per item (e.g.
rm's accuracy; eval ones as eval_<metric>). make_batch(items) builds a batch from the stage's own
items (a dict with "num_tokens"); without it items are causal samples, packed or not. ddp=False
keeps the model unwrapped (a loss that does not call model.forward, like rm's score read) and
averages gradients over ranks by hand. A stage whose step is not one optimizer step (ppo) passes
`steps=` (a callable step plus its own checkpoint state, see _fit_steps) and `total=`. Resume, the
log/eval/save cadence, best/final adapters and main-rank-only writes are the same for every stage.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainer.data.encoding import IGNORE
from trainer.data.packing import additive_mask, collate, pack, singletons
from trainer.memory import HeapGuard
from trainer.modeling import load_adapter_weights, make_optimizer, make_scheduler, save_adapter
from trainer.runs import TrainProgress


def make_accelerator(cfg):
    """An Accelerator for this process (cpu / this rank's GPU; the config's precision)."""
    import os

    from accelerate import Accelerator

    from medchat.core.models import pick_device

    device = pick_device(cfg.model.device or None)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # a recipe may change precision between stages
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(True)
    mp = "bf16" if cfg.training.bf16 else "fp16" if cfg.training.fp16 else "no"
    return Accelerator(cpu=device == "cpu", mixed_precision=mp)


def _split(out):
    """A loss_fn's result -> (loss sum, {metric: sum})."""
    return out if isinstance(out, tuple) else (out, {})


def causal_loss(model, batch: dict) -> torch.Tensor:
    """Sum of next-token cross entropy over trained positions (logits only where a label exists)."""
    labels = batch["labels"]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE
    targets = labels[:, 1:][keep[:, :-1]]
    if targets.numel() == 0:
        return torch.zeros((), device=labels.device, requires_grad=True)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"], logits_to_keep=keep, use_cache=False)
    logits = out.logits
    if logits.dim() == 3:  # a model that ignores a boolean logits_to_keep
        logits = logits[keep]
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def count_targets(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != IGNORE).sum())


@dataclass
class LoopResult:
    step: int
    train_loss: float
    eval_loss: float | None
    best_step: int | None
    final_eval_loss: float | None
    tokens: int
    runtime_s: float
    adapter_dir: str


class TrainLoop:
    def __init__(self, cfg, tm, run, train, val, accelerator, packing: bool = False, quiet: bool = False,
                 on_step=None, loss_fn=causal_loss, count_fn=count_targets, make_batch=None, ddp: bool = True,
                 keep_best: bool = True, steps=None, total: int | None = None):
        self.cfg, self.tm, self.run, self.acc = cfg, tm, run, accelerator
        self.steps = steps  # a stage whose step is not one optimizer step (ppo): see _fit_steps
        self.t = cfg.training
        self.train, self.val = train, val
        self.loss_fn, self.count_fn, self.on_step, self.quiet = loss_fn, count_fn, on_step, quiet
        self.make_batch, self.ddp, self.keep_best = make_batch, ddp, keep_best
        self.eval_extra: dict = {}
        cap = cfg.data.cutoff_len
        if make_batch is not None:
            self.rows, self.val_rows = list(train), list(val or [])
        else:
            self.rows = pack(train, cap) if packing else singletons(train)
            self.val_rows = (pack(val, cap) if packing else singletons(val)) if val else []
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        bs = self.t.batch_size
        micro = math.ceil(len(self.rows) / bs)
        self.micro_per_epoch = math.ceil(micro / self.world) * self.world
        self.steps_per_epoch = math.ceil(self.micro_per_epoch / (self.world * self.t.grad_accum))
        self.total = self.t.max_steps or max(1, math.ceil(self.t.num_epochs * self.steps_per_epoch))
        if steps is not None:
            self.steps_per_epoch, self.total = 1, int(total)
        self.pad_id = tm.tokenizer.pad_token_id if tm.tokenizer.pad_token_id is not None else 0
        self._perm_cache: dict = {}
        self.heap = HeapGuard()  # trims the heap when the run outgrows its working set (trainer/memory.py)

    # --- data order: a pure function of (seed, epoch, step) -------------------------------------
    def _epoch_micro(self, epoch: int) -> list[list[int]]:
        if epoch not in self._perm_cache:
            g = torch.Generator().manual_seed(self.t.seed + epoch)
            perm = torch.randperm(len(self.rows), generator=g).tolist()
            bs = self.t.batch_size
            micro = [perm[i: i + bs] for i in range(0, len(perm), bs)]
            micro += micro[: self.micro_per_epoch - len(micro)]  # wrap so every rank gets a batch
            self._perm_cache = {epoch: micro}
        return self._perm_cache[epoch]

    def micro_batches(self, step: int) -> list[dict]:
        epoch, k = divmod(step, self.steps_per_epoch)
        micro = self._epoch_micro(epoch)
        per_step = self.world * self.t.grad_accum
        group = micro[k * per_step: (k + 1) * per_step]
        mine = group[self.rank:: self.world]
        return [self._batch([self.rows[i] for i in mb], self.train) for mb in mine]

    def _batch(self, rows, samples) -> dict:
        if self.make_batch is not None:
            return self.make_batch(rows)
        flat = [r for r in rows]
        batch = collate(samples, flat, self.pad_id)
        batch = {k: (v.to(self.acc.device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        return additive_mask(batch, self.mask_dtype)

    def _sync_grads(self, params) -> None:
        if self.world == 1:
            return
        import torch.distributed as td

        for p in params:
            if p.grad is not None:
                td.all_reduce(p.grad)
                p.grad.div_(self.world)

    def _sum(self, *values: float) -> list[float]:
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.acc.device)
        return self.acc.reduce(t, reduction="sum").tolist()

    # --- eval --------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> float | None:
        if not self.val_rows:
            return None
        model = self.acc.unwrap_model(self.model)  # no DDP collectives: ranks may run unequal batches
        model.eval()
        bs = self.t.batch_size
        micro = [self.val_rows[i: i + bs] for i in range(0, len(self.val_rows), bs)][self.rank:: self.world]
        loss_sum = count = 0.0
        extra: dict = {}
        for mb in micro:
            batch = self._batch(mb, self.val)
            with self.acc.autocast():
                loss, more = _split(self.loss_fn(model, batch))
            loss_sum += float(loss)
            for k, v in more.items():
                extra[k] = extra.get(k, 0.0) + float(v)
            count += self.count_fn(batch)
        model.train()
        self.heap.after_step()
        keys = sorted(extra)
        loss_sum, count, *sums = self._sum(loss_sum, count, *[extra[k] for k in keys])
        self.eval_extra = {k: v / max(count, 1.0) for k, v in zip(keys, sums)}
        return loss_sum / max(count, 1.0)

    def eval_due(self, step: int) -> bool:
        if not self.val_rows:
            return False
        if step == self.total:
            return True
        return step % (self.t.eval_steps or self.steps_per_epoch) == 0

    # --- checkpoints ---------------------------------------------------------------------------------
    def _write_checkpoint(self, step: int, state: dict) -> None:
        extra = self.steps.gather_state() if self.steps is not None else None  # a collective: every rank

        def write(tmp):
            save_adapter(self.tm, tmp / "adapter")
            if self.steps is not None:
                self.steps.save(tmp, extra)
            else:
                torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
                torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
            (tmp / "state.json").write_text(json.dumps({**state, "step": step}))

        if self.acc.is_main_process:
            self.run.save_checkpoint(step, write)
        self.acc.wait_for_everyone()

    def _resume(self) -> dict:
        ckpt = self.run.latest_checkpoint()
        if ckpt is None:
            return {"step": 0}
        load_adapter_weights(self.tm, ckpt / "adapter")
        if self.steps is not None:
            self.steps.load(ckpt, self.rank)
        else:
            self.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=self.acc.device,
                                                      weights_only=True))
            self.scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
        state = json.loads((ckpt / "state.json").read_text())
        if self.acc.is_main_process:
            self.run.truncate_log(state["step"])
        return state

    # --- the loop --------------------------------------------------------------------------------------
    def fit(self) -> LoopResult:
        # medchat.core.models.load_base turns autograd off process-wide (chat never needs it); training does
        with torch.enable_grad():
            return self._fit() if self.steps is None else self._fit_steps()

    def _fit_steps(self) -> LoopResult:
        """The same loop for a stage that brings whole steps (`steps`, e.g. ppo: rollout + optimiser epochs):
        steps(step) -> stats (already averaged over ranks); steps.gather_state() / save(tmp, state) /
        load(ckpt, rank) checkpoint its own state; steps.on_log(step) after a logging step (main rank).
        Resume, per-step reseeding, one log record per step, checkpoints and final/ are the loop's."""
        acc, t = self.acc, self.t
        self.model = self.tm.model
        state = self._resume() if t.resume else {"step": 0}
        step, ran, last_loss = state["step"], state.get("runtime_s", 0.0), state.get("last_loss", float("nan"))
        t0 = time.perf_counter()
        quiet = self.quiet or not acc.is_main_process
        with TrainProgress(self.total, f"{self.cfg.stage} {self.cfg.name}", quiet, start=step) as bar:
            while step < self.total:
                torch.manual_seed(t.seed * 1_000_003 + step * self.world + self.rank)
                stats = self.steps(step)
                self.heap.after_step()
                step += 1
                last_loss = float(stats.get("loss", last_loss))
                record = {"step": step, **{k: (round(v, 6) if isinstance(v, float) else v)
                                           for k, v in stats.items() if k != "step"}}
                if acc.is_main_process:
                    self.run.log(record)
                    if step % t.logging_steps == 0 or step == self.total:
                        self.steps.on_log(step)
                bar.update(step, loss=last_loss, lr=stats.get("lr"))
                if step % t.save_steps == 0 or step == self.total:
                    self._write_checkpoint(step, {"last_loss": last_loss, "runtime_s": ran + time.perf_counter() - t0})
                if self.on_step is not None:
                    self.on_step(record)
        if acc.is_main_process:
            self.run.replace_dir("final", lambda d: save_adapter(self.tm, d))
        acc.wait_for_everyone()
        return LoopResult(step=step, train_loss=last_loss, eval_loss=None, best_step=None, final_eval_loss=None,
                          tokens=0, runtime_s=ran + time.perf_counter() - t0, adapter_dir=str(self.run.dir / "final"))

    def _fit(self) -> LoopResult:
        acc, t = self.acc, self.t
        self.mask_dtype = torch.float32 if not (t.bf16 or t.fp16) else (torch.bfloat16 if t.bf16 else torch.float16)
        optimizer = make_optimizer(self.tm, t)
        self.scheduler = make_scheduler(optimizer, t, self.total)
        if self.ddp:
            self.model, self.optimizer = acc.prepare(self.tm.model, optimizer)
            self.tm.model = self.model
        else:  # unwrapped model: gradients are averaged over ranks by hand (_sync_grads)
            self.model, self.optimizer = self.tm.model, optimizer
        state = self._resume() if t.resume else {"step": 0}
        step = state["step"]
        best, best_step = state.get("best_eval"), state.get("best_step")
        tokens_total = state.get("tokens", 0)
        ran = state.get("runtime_s", 0.0)
        last_eval = state.get("last_eval")
        params = [p for p in self.model.parameters() if p.requires_grad]
        win_loss, win_count, win_tokens, win_compute = state.get("window", [0.0, 0.0, 0.0, 0.0])
        win_extra: dict = dict(state.get("window_extra", {}))
        last_extra: dict = dict(state.get("last_extra", {}))
        last_loss = state.get("last_loss", float("nan"))
        t0 = time.perf_counter()
        self.model.train()
        quiet = self.quiet or not acc.is_main_process
        with TrainProgress(self.total, f"{self.cfg.stage} {self.cfg.name}", quiet, start=step) as bar:
            while step < self.total:
                step_t0 = time.perf_counter()
                torch.manual_seed(t.seed * 1_000_003 + step * self.world + self.rank)
                batches = self.micro_batches(step)
                local = [self.count_fn(b) for b in batches]
                (global_count,) = self._sum(float(sum(local)))
                step_loss = step_tokens = 0.0
                step_extra: dict = {}
                for j, batch in enumerate(batches):
                    sync = j == len(batches) - 1
                    ctx = contextlib.nullcontext() if sync or not self.ddp else acc.no_sync(self.model)
                    with ctx:
                        with acc.autocast():
                            loss_sum, more = _split(self.loss_fn(self.model, batch))
                        acc.backward(loss_sum * self.world / max(global_count, 1.0))
                    step_loss += float(loss_sum.detach())
                    step_tokens += batch["num_tokens"]
                    for k, v in more.items():
                        step_extra[k] = step_extra.get(k, 0.0) + float(v)
                if not self.ddp:
                    self._sync_grads(params)
                if t.max_grad_norm and t.max_grad_norm > 0:
                    acc.clip_grad_norm_(params, t.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.heap.after_step()
                step += 1
                win_compute += time.perf_counter() - step_t0  # tokens/s excludes eval and checkpoint time
                keys = sorted(step_extra)
                step_loss, step_tokens, *sums = self._sum(step_loss, step_tokens, *[step_extra[k] for k in keys])
                for k, v in zip(keys, sums):
                    win_extra[k] = win_extra.get(k, 0.0) + v
                tokens_total += int(step_tokens)
                win_tokens += step_tokens
                win_loss += step_loss
                win_count += global_count
                record = None
                eval_loss = self.evaluate() if self.eval_due(step) else None
                if eval_loss is not None:
                    last_eval = eval_loss
                    if best is None or eval_loss < best:
                        best, best_step = eval_loss, step
                        if acc.is_main_process and self.keep_best:
                            self.run.replace_dir("best", lambda d: save_adapter(self.tm, d))
                        acc.wait_for_everyone()
                lr = self.scheduler.get_last_lr()[0]
                if step % t.logging_steps == 0 or step == self.total:
                    last_loss = win_loss / max(win_count, 1.0) if win_count else last_loss
                    if win_count:
                        last_extra = {k: v / win_count for k, v in win_extra.items()}
                    record = {"step": step, "epoch": round(step / self.steps_per_epoch, 3),
                              "loss": round(last_loss, 6), **{k: round(v, 4) for k, v in last_extra.items()},
                              "lr": lr, "tokens_per_s": round(win_tokens / max(win_compute, 1e-9), 1),
                              "tokens": tokens_total}
                    win_loss = win_count = win_tokens = win_compute = 0.0
                    win_extra = {}
                elif eval_loss is not None:  # an eval between logging steps: the train window keeps going
                    record = {"step": step, "epoch": round(step / self.steps_per_epoch, 3), "lr": lr,
                              "tokens": tokens_total}
                if record is not None:
                    if eval_loss is not None:
                        record["eval_loss"] = round(eval_loss, 6)
                        record.update({f"eval_{k}": round(v, 4) for k, v in self.eval_extra.items()})
                    if acc.is_main_process:
                        self.run.log(record)
                    bar.update(step, loss=last_loss, lr=lr, tokens_per_s=record.get("tokens_per_s"),
                               eval_loss=eval_loss)
                else:
                    bar.update(step)
                if step % t.save_steps == 0 or step == self.total:
                    self._write_checkpoint(step, {"best_eval": best, "best_step": best_step, "tokens": tokens_total,
                                                  "last_loss": last_loss, "last_eval": last_eval,
                                                  "runtime_s": ran + time.perf_counter() - t0,
                                                  "window": [win_loss, win_count, win_tokens, win_compute],
                                                  "window_extra": win_extra, "last_extra": last_extra})
                if self.on_step is not None:
                    self.on_step(step)
        if acc.is_main_process:
            self.run.replace_dir("final", lambda d: save_adapter(self.tm, d))
        acc.wait_for_everyone()
        adapter = self.run.dir / ("best" if best is not None and self.keep_best else "final")
        return LoopResult(step=step, train_loss=last_loss, eval_loss=best, best_step=best_step,
                          final_eval_loss=last_eval, tokens=tokens_total, runtime_s=ran + time.perf_counter() - t0,
                          adapter_dir=str(adapter))
