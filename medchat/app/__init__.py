"""medchat.app: the application layer — the `medchat` CLI, the chat session, triage, history, the
TUI and REPL, evaluation and benchmarks, the shipped profiles. It may import everything (kb/,
trainer/, medchat.core); nothing imports it.
"""
