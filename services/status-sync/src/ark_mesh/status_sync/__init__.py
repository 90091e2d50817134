"""status-sync service (not implemented yet)."""
