"""What an agent, team or tool run hands back to its caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ark_mesh.contracts.endings import last_assistant_text
from ark_mesh.resolver.ports import ChatMessage

__all__ = ["Outcome", "Signal", "last_assistant_text"]


@dataclass(frozen=True)
class Signal:
    """Control flow raised by a built-in tool, not an error: ``terminate`` ends the team (its
    ``value`` is the closing response), ``selection`` names the next team speaker."""

    kind: Literal["terminate", "selection"]
    value: str = ""


@dataclass
class Outcome:
    """The new messages of a run (assistant, tool, system) and the signal that ended it."""

    messages: list[ChatMessage] = field(default_factory=list)
    signal: Signal | None = None
