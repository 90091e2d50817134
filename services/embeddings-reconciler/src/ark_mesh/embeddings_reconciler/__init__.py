"""Embeddings reconciler service (not implemented yet)."""
