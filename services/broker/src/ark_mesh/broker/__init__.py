"""Broker HTTP API (not implemented yet)."""
