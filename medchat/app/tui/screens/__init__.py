"""Modal screens: profile picker, history browser, help."""
