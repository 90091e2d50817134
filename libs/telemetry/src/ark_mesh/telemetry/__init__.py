"""Logging, tracing and metrics set up the same way in every ark-mesh process."""
