"""How large a query the bus can carry, checked before anything is recorded or published.

A query's input travels in its work message, its read-model record and its final chunk
(``ark.completedQuery``), and its answer in its status updates and final chunk; each of these
is one NATS message, at most the server's ``max_payload`` (1 MiB by default). Results and dead
letters travel in pieces (:mod:`ark_mesh.bus.large`); these do not. A query whose spec takes
more than half of ``max_payload`` is refused with a 413 naming ``input``: the half left is room
for the rest of the message and for an answer, and it keeps the failure path deliverable — a
query whose answer does not fit ends in ``error`` with a short message, and that ending (final
chunk with the input, record) always fits. The bound follows the server: raise NATS'
``max_payload`` (up to 8 MB, NATS' advice) and larger queries are taken.
"""

from __future__ import annotations

import msgspec

from ark_mesh.broker.errors import TooLargeError
from ark_mesh.contracts import QuerySpec

__all__ = ["check_query_size", "query_size_limit"]


def query_size_limit(max_payload: int) -> int:
    """The largest encoded Query spec taken on a server with this ``max_payload``."""
    return max_payload // 2


def check_query_size(spec: QuerySpec, *, max_payload: int) -> None:
    """Raise :class:`TooLargeError` (413, ``field: input``) for a spec the bus cannot carry."""
    size = len(msgspec.json.encode(spec))
    limit = query_size_limit(max_payload)
    if size > limit:
        raise TooLargeError(
            f"the query is {size} bytes; at most {limit} bytes are taken (half of the NATS "
            f"server's max_payload of {max_payload} bytes: its status and final chunk carry "
            "the input and the answer in one message)",
            field="input",
        )
