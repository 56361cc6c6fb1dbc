"""medchat: a private, offline doctor-style chat that fine-tunes its own models.

Two layers, one direction: `medchat.app` (CLI, chat session, TUI, triage, evaluation) imports kb/
and trainer/, which import only `medchat.core` (the seam: errors, paths, the profile store, the
chat engine). See docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
