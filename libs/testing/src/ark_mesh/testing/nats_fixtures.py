"""pytest fixtures for the nats test infrastructure."""

__all__: list[str] = []
