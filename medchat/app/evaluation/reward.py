"""Mean reward of replies, scored by a kind=reward profile."""

from __future__ import annotations

from medchat.core.profiles import require_reward


def check_reward_profile(store, name: str):
    return require_reward(store.get(name), hint="pass a profile trained with `medchat train --stage rm` "
                                                 "(kind=reward in `medchat profiles list`)")


def load_reward_scorer(name: str):
    """The reward-model scorer: `scorer.score(list_of_message_lists) -> tensor` (trainer.reward_model)."""
    from trainer.reward_model import load_reward_model  # lazy: torch-heavy, needed only with --reward

    return load_reward_model(name)


def score_replies(scorer, conversations: list[list[dict]], batch_size: int = 8) -> list[float]:
    out: list[float] = []
    for i in range(0, len(conversations), batch_size):
        chunk = conversations[i:i + batch_size]
        scores = scorer.score(chunk)
        values = scores.detach().float().cpu().reshape(-1).tolist() if hasattr(scores, "detach") else list(scores)
        if len(values) != len(chunk):
            raise RuntimeError(f"the reward model returned {len(values)} scores for {len(chunk)} replies")
        out += [float(v) for v in values]
    return out
