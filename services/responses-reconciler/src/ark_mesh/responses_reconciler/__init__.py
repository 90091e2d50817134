"""Responses reconciler service (not implemented yet)."""
