"""The public surface of ark_mesh.bus is exactly what ``__all__`` lists."""

from __future__ import annotations

import ark_mesh.bus as bus
from ark_mesh.bus import errors


def test_all_lists_every_public_name_and_nothing_else() -> None:
    exported = {name for name in dir(bus) if not name.startswith("_")}
    modules = {name for name in exported if type(getattr(bus, name)).__name__ == "module"}
    assert set(bus.__all__) == exported - modules
    assert sorted(bus.__all__) == bus.__all__


def test_exception_tree_matches_its_documentation() -> None:
    assert issubclass(bus.BusUnavailableError, bus.BusError)
    assert issubclass(bus.PublishTimeoutError, bus.PublishError)
    assert issubclass(bus.TopologyConflictError, bus.TopologyError)
    assert issubclass(bus.TopologyConfigError, ValueError)
    assert issubclass(bus.TransientError, bus.HandlerError)
    assert issubclass(bus.PermanentError, bus.HandlerError)
    assert issubclass(bus.ReaderUnavailableError, bus.ReadError)
    assert issubclass(bus.ReaderLagError, bus.ReadError)
    assert issubclass(bus.ReadError, bus.BusError)
    assert not issubclass(bus.HandlerError, bus.BusError)
    for name in errors.__all__:
        assert name in (errors.__doc__ or ""), f"{name} missing from the drawn tree"
