"""PPO (stage ppo): RLHF of a new LoRA on top of --from, scored by a --reward profile.

    profile = run(cfg)                      # cfg.reward.reward names a profile of kind "reward"
    profile = run(cfg, reward_fn=f)         # or any f(conversations) -> scores (tests, custom rewards)

Policy: base + merged --from chain + a new LoRA (trainer.modeling.load_for_training, merged); the reference is the same model
with the new adapter disabled, i.e. exactly the --from profile. Prompts come from --dataset (SFT
data: the prompt of each conversation; pairwise data: the pairs' prompts). Every step logs reward
mean/std, KL, entropy, value/policy loss, clip fraction and reply length to trainer_log.jsonl and
redraws loss.png and reward.png. Steps run in the shared TrainLoop (trainer.stages.loop, `steps=`
mode: resume, cadence, ranks); checkpoints (adapter, value head, optimizer, KL coefficient, prompt
order, per rank) go to checkpoints/step-N every --save-steps; --resume continues from the latest.
The value head is saved as run_dir/value_head.safetensors; the profile holds only the policy adapter.
The PPO math (core.py), rollouts (rollout.py), value head and PPOTrainer (trainer.py) sit beside this file.
"""

from __future__ import annotations

import os
import sys

import torch

from medchat.core.errors import UserError
from medchat.core.profiles import Profile, ProfileStore
from trainer.data import dataset_dir_of, load_datasets
from trainer.data.pairwise import pair_prompts
from trainer.modeling import template_of
from trainer.reward_model import load_reward_model, require_reward_profile
from trainer.runs import Run
from trainer.stages.ppo.trainer import check_args
from trainer.stages.skeleton import finish, prepare


def _say(text: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(text, file=sys.stderr, flush=True)


def plot_rewards(run: Run):
    """reward.png: reward mean (+/- std) and KL per step (the shared Agg chart helper, saved atomically)."""
    from medchat.core import charts

    records = [r for r in run.records() if "reward_mean" in r]
    if not records:
        return None
    steps = [r["step"] for r in records]
    mean = [r["reward_mean"] for r in records]
    std = [r.get("reward_std", 0.0) for r in records]
    fig = charts.figure(7, 6, dpi=100)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.plot(steps, mean, label="reward mean")
    ax1.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
    ax1.set_ylabel("reward")
    ax1.grid(alpha=0.3)
    ax1.legend()
    ax2.plot(steps, [r.get("kl", 0.0) for r in records], color="tab:red", label="KL to --from")
    ax2.set_xlabel("step")
    ax2.set_ylabel("KL (nats / reply)")
    ax2.grid(alpha=0.3)
    ax2.legend()
    fig.suptitle(run.dir.name)
    return charts.save(fig, run.dir / "reward.png")


def load_prompts(cfg) -> tuple[list[list[dict]], list[dict]]:
    d = cfg.data
    if not d.datasets:
        raise UserError("--stage ppo needs prompts: pass --dataset (SFT or pairwise data, e.g. covid_sft)")
    examples, infos, skipped = load_datasets(d.datasets, dataset_dir_of(cfg), "ppo", d.skip_bad, d.max_samples)
    if skipped:
        _say(f"skipped {len(skipped)} bad rows (--skip-bad); first: {skipped[0]}")
    prompts = pair_prompts(examples)
    if not prompts:
        raise UserError("PPO needs prompts: the dataset gave none")
    return prompts, infos


def _window_mean(history: list[dict], key: str, first: bool) -> float:
    k = max(1, len(history) // 4)
    part = history[:k] if first else history[-k:]
    return sum(h[key] for h in part) / len(part)


class PPOSteps:
    """PPO's steps for the shared TrainLoop: one call = rollout -> reward -> optimiser epochs on this rank."""

    def __init__(self, trainer, prompts, run: Run, dist, lr: float):
        self.trainer, self.prompts, self.run, self.dist, self.lr = trainer, prompts, run, dist, lr
        self.history: list[dict] = []

    def __call__(self, step: int) -> dict:
        stats = self.trainer.step(self.trainer.next_prompts(self.prompts))
        stats = {**self.dist.mean(stats), "step": stats["step"], "lr": self.lr}
        self.history.append({k: (round(v, 6) if isinstance(v, float) else v) for k, v in stats.items()})
        return stats

    def gather_state(self) -> list:
        return self.dist.gather(self.trainer.state_dict())  # each rank samples its own rollouts

    def save(self, tmp, states: list) -> None:
        self.trainer.value_head.save(tmp)
        for rank, st in enumerate(states):
            torch.save(st, tmp / ("trainer.pt" if rank == 0 else f"trainer-rank{rank}.pt"))

    def load(self, ckpt, rank: int) -> None:
        self.trainer.value_head.load(ckpt)
        self.trainer.load_state_dict(torch.load(ckpt / ("trainer.pt" if rank == 0 else f"trainer-rank{rank}.pt"),
                                                weights_only=True))
        self.history = [r for r in self.run.records() if "reward_mean" in r and r["step"] <= self.trainer.step_count]

    def on_log(self, step: int) -> None:
        self.run.plot()
        plot_rewards(self.run)


def _checker(reward_fn, store):
    def check(cfg) -> None:
        check_args(cfg.ppo)
        if reward_fn is None:  # fail on a bad --reward before loading any model
            require_reward_profile(cfg.reward.reward, store)
    return check


def run(cfg, quiet: bool = False, store: ProfileStore | None = None, reward_fn=None, on_step=None, **_) -> Profile | None:
    from trainer.stages.ppo.trainer import PPOTrainer
    from trainer.stages.loop import TrainLoop, make_accelerator

    store = store or ProfileStore()
    job = prepare(cfg, "ppo", load_data=load_prompts, store=store, quiet=quiet, check=_checker(reward_fn, store),
                  merge_parents=True)
    cfg, tm, run, dist = job.cfg, job.tm, job.run, job.dist
    prompts, infos = job.data
    t = cfg.training
    template = template_of(cfg, tm)
    scorer = reward_fn or load_reward_model(cfg.reward.reward, device=tm.device, store=store)
    # each rank samples its own rollouts (seed + rank); gradients are averaged over ranks
    trainer = PPOTrainer(tm.model, tm.tokenizer, scorer, cfg.ppo, template=template,
                         learning_rate=t.learning_rate, max_grad_norm=t.max_grad_norm,
                         max_prompt_len=cfg.data.cutoff_len, seed=t.seed + dist.rank, sync_grads=dist.sync_grads,
                         mean_over_ranks=dist.mean if dist.world > 1 else None)
    steps = PPOSteps(trainer, prompts, run, dist, t.learning_rate)
    total = cfg.ppo.steps
    reward_name = cfg.reward.reward or getattr(reward_fn, "__name__", "python reward")
    job.say(f"ppo {cfg.model.method}: {len(prompts)} prompts, {total} steps x {cfg.ppo.rollout_batch_size} rollouts, "
            f"reward {reward_name}; run {run.dir}")
    loop = TrainLoop(cfg, tm, run, [], [], make_accelerator(cfg), quiet=quiet, on_step=on_step, steps=steps,
                     total=total)
    with job.guard():
        result = loop.fit()
    history = steps.history
    if dist.is_main:
        plot_rewards(run)
        trainer.value_head.save(run.dir)
    metrics = {"steps": result.step, "runtime_s": round(result.runtime_s, 1), "prompts": len(prompts),
               "reward": reward_name}
    if history:
        metrics.update(reward_first=_window_mean(history, "reward_mean", True),
                       reward_last=_window_mean(history, "reward_mean", False),
                       kl_last=history[-1]["kl"], kl_coef=history[-1]["kl_coef"],
                       reply_length_last=history[-1]["reply_length"])
    if not cfg.description:
        cfg.description = f"ppo on {', '.join(cfg.data.datasets)} with reward {reward_name}"

    def message(profile, m):
        rw = (f", reward {m['reward_first']:.3f} -> {m['reward_last']:.3f}, KL {m['kl_last']:.3f}"
              if history else "")
        return (f"installed profile '{profile.name}' (ppo, chain {' > '.join(profile.chain)}): {result.step} "
                f"steps{rw}; run {run.dir}; chat with: medchat chat -p {profile.name}")

    return finish(job, result.adapter_dir, metrics, infos, dataset_keys=("name", "sha256", "rows"), message=message)
