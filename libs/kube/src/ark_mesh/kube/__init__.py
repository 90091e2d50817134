"""Kubernetes adapter over kubernetes-asyncio."""
