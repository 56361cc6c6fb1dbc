"""Offline evaluation of chat profiles: batched generation, ROUGE/BLEU/BERTScore, length, reward, reports.

Entry point: `medchat.app.evaluation.runner.run_eval(EvalOptions(...))` (the `medchat eval` command).
"""
