"""Every API request the emulator answered, so tests can count them "at the server".

Counting at the server is what makes claims such as "one status write per phase change"
checkable: a client-side counter would miss retries and writes from other processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RequestLog", "RequestRecord"]

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    query: str
    verb: str  # Kubernetes verb, or "discovery"
    group: str
    version: str
    resource: str
    subresource: str
    namespace: str
    name: str
    status: int
    injected: bool  # answered by a fault rule rather than the store
    content_type: str

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Append-only list of records with a filtering counter."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        self._records.append(record)

    def clear(self) -> None:
        self._records.clear()

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def select(
        self,
        *,
        verb: str | None = None,
        group: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        status: int | None = None,
        writes_only: bool = False,
    ) -> list[RequestRecord]:
        """Records matching every given criterion (``subresource=""`` means the main resource)."""
        return [
            r
            for r in self._records
            if (verb is None or r.verb == verb)
            and (group is None or r.group == group)
            and (resource is None or r.resource == resource)
            and (subresource is None or r.subresource == subresource)
            and (namespace is None or r.namespace == namespace)
            and (name is None or r.name == name)
            and (status is None or r.status == status)
            and (not writes_only or r.is_write)
        ]

    def count(self, **criteria: Any) -> int:
        return len(self.select(**criteria))
