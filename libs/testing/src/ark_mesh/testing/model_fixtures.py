"""pytest fixtures for the model test infrastructure."""

__all__: list[str] = []
