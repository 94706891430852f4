"""Starting weights shared by every method: the formula-driven supervised start."""
