"""One small widget per file: the chat pane's messages, the input, the status bar and side panels."""
