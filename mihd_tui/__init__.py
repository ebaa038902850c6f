"""mihd-tui: the terminal dashboard over a MIHD workspace (shows what `mihd` computes; no decisions here)."""
