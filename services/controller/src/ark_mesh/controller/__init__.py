"""Thin Query controller (not implemented yet)."""
