"""Bottom status line: profile and chain, base, device, KB, context use, speed of the last reply."""

from __future__ import annotations

from textual.widgets import Static


class StatusBar(Static):
    def show_loading(self, label: str) -> None:
        self.add_class("loading")
        self.update(label)

    def show_state(self, profile: str, chain: str, base: str, device: str, kb: str | None,
                   used: int, limit: int, tokens_per_s: float, busy: str = "") -> None:
        self.remove_class("loading")
        parts = [f"profile {profile}" + (f" ({chain})" if chain and chain != profile else ""),
                 f"base {base}", device, f"KB {kb}" if kb else "KB off", f"ctx {used}/{limit}"]
        if tokens_per_s:
            parts.append(f"{tokens_per_s:.1f} tok/s")
        if busy:
            parts.append(busy)
        self.update(" · ".join(parts))
