"""Standalone QueryReconciler service (not implemented yet)."""
