"""The chat engine: base model resident, LoRA profiles hot-swapped, replies streamed."""

from medchat.core.engine.engine import ChatEngine, GenerationStats

__all__ = ["ChatEngine", "GenerationStats"]
