"""The chat engine: base model resident, LoRA profiles hot-swapped, replies streamed.

`protocol` (the contract, torch-free) imports without torch; `ChatEngine` loads torch on first use.
"""

from medchat.core.engine.protocol import Backend, Engine, GenerationStats, collect

__all__ = ["Backend", "ChatEngine", "Engine", "GenerationStats", "collect"]


def __getattr__(name: str):
    if name == "ChatEngine":
        from medchat.core.engine.engine import ChatEngine

        return ChatEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
