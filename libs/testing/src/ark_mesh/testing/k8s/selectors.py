"""Label and field selectors in the string syntax of the ``labelSelector``/``fieldSelector``
query parameters.

Parsing is strict on purpose: a real server answers an unparsable selector with
``400 BadRequest``, and a client that builds selectors by hand should learn that here rather
than against a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ark_mesh.testing.k8s.errors import ApiError

__all__ = ["FieldGetter", "FieldSelector", "LabelSelector", "Requirement", "lookup", "path_getter"]

_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|<|>|[^\s(),!=<>]+)")
_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One clause: ``key <operator> values`` with the server's operator names."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
            case "gt" | "lt":
                if value is None:
                    return False
                try:
                    number = int(value)
                except ValueError:
                    return False
                bound = int(self.values[0])
                return number > bound if self.operator == "gt" else number < bound
        return False


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text or not text.strip():
            return cls()
        return cls(tuple(_LabelParser(text).parse()))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        return all(req.matches(labels or {}) for req in self.requirements)


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = [m.group(1) for m in _TOKEN.finditer(text)]
        if "".join(self.tokens) != re.sub(r"\s+", "", text):
            raise self._error("unexpected character")
        self.pos = 0

    def _error(self, why: str) -> ApiError:
        return ApiError.bad_request(f"unable to parse requirement: {why} in {self.text!r}")

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise self._error("unexpected end of selector")
        self.pos += 1
        return token

    def parse(self) -> list[Requirement]:
        requirements = [self._requirement()]
        while self._peek() is not None:
            if self._take() != ",":
                raise self._error("expected ','")
            requirements.append(self._requirement())
        return requirements

    def _key(self, token: str) -> str:
        if not _KEY.match(token) or token in ("in", "notin"):
            raise self._error(f"invalid label key {token!r}")
        return token

    def _value(self, token: str) -> str:
        if len(token) > 63 or not _VALUE.match(token):
            raise self._error(f"invalid label value {token!r}")
        return token

    def _requirement(self) -> Requirement:
        token = self._take()
        if token == "!":
            return Requirement(self._key(self._take()), "!")
        key = self._key(token)
        op = self._peek()
        if op is None or op == ",":
            return Requirement(key, "exists")
        self.pos += 1
        if op in ("=", "=="):
            return Requirement(key, "=", (self._optional_value(),))
        if op == "!=":
            return Requirement(key, "!=", (self._optional_value(),))
        if op in ("in", "notin"):
            return Requirement(key, op, self._set())
        if op in (">", "<"):
            bound = self._take()
            if not bound.lstrip("-").isdigit():
                raise self._error(
                    f"for 'gt', 'lt' operators, the value must be an integer: {bound}"
                )
            return Requirement(key, "gt" if op == ">" else "lt", (bound,))
        raise self._error(f"unknown operator {op!r}")

    def _optional_value(self) -> str:
        token = self._peek()
        if token is None or token == ",":
            return ""
        return self._value(self._take())

    def _set(self) -> tuple[str, ...]:
        if self._take() != "(":
            raise self._error("expected '(' after set operator")
        values: list[str] = []
        while True:
            token = self._take()
            if token == ")":
                break
            if token == ",":
                continue
            values.append(self._value(token))
        if not values:
            raise self._error("for 'in', 'notin' operators, values set can't be empty")
        return tuple(values)


FieldGetter = Callable[[Mapping[str, Any]], str | None]


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """``field=value`` / ``field!=value`` clauses over the fields a resource supports.

    ``supported`` names the selectable fields; a mapping gives each its getter, for fields
    whose selector name is not the stored path (``regarding.name`` on ``events.k8s.io/v1``
    reads the stored ``involvedObject.name``) or whose value is computed. A field that is
    absent compares as the empty string, as on a real server.
    """

    clauses: tuple[tuple[str, bool, str, FieldGetter], ...] = ()  # (field, equal, value, get)

    @classmethod
    def parse(
        cls, text: str | None, supported: Sequence[str] | Mapping[str, FieldGetter]
    ) -> FieldSelector:
        if not text or not text.strip():
            return cls()
        getters: Mapping[str, FieldGetter] = (
            supported
            if isinstance(supported, Mapping)
            else {name: path_getter(name) for name in supported}
        )
        clauses: list[tuple[str, bool, str, FieldGetter]] = []
        for part in text.split(","):
            match = re.fullmatch(r"\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*", part)
            if match is None:
                raise ApiError.bad_request(f"invalid selector: {text!r}; can't understand {part!r}")
            field, operator, value = match.groups()
            if field not in getters:
                listed = ", ".join(f'"{name}"' for name in getters)
                raise ApiError.bad_request(
                    f"field label not supported: {field} (supported: {listed})"
                )
            clauses.append((field, operator != "!=", value, getters[field]))
        return cls(tuple(clauses))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(((get(obj) or "") == value) == equal for _, equal, value, get in self.clauses)


def path_getter(dotted: str) -> FieldGetter:
    """Reads the string form of ``dotted`` (see :func:`lookup`)."""

    def get(obj: Mapping[str, Any]) -> str | None:
        return lookup(obj, dotted)

    return get


def lookup(obj: Mapping[str, Any], dotted: str) -> str | None:
    """The string form of a dotted field path (``involvedObject.name``), or ``None``."""
    current: Any = obj
    for part in dotted.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    if current is None:
        return "" if dotted.startswith("metadata.") else None
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)
