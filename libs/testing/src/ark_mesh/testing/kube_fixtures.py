"""pytest fixtures for the kube test infrastructure."""

__all__: list[str] = []
