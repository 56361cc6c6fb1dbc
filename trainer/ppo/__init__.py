"""PPO for RLHF on top of peft: pure math (core), value head, rollouts and the training loop."""
