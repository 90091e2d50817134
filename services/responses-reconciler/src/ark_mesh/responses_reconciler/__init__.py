"""The responses reconciler: chat-completions / Responses-style requests on a Model or Agent.

Run it with ``python -m ark_mesh.responses_reconciler --config FILE``. The pieces:

* :class:`ResponsesReconcilerConfig` — the typed configuration (:mod:`.config`);
* :class:`ResponsesReconcilerService` — wiring and lifecycle (:mod:`.service`);
* :class:`ResponsesWork` — one delivery: model or agent target, one result (:mod:`.handler`);
* :class:`ResponsesSink` — chunks and the result on JetStream (:mod:`.sink`);
* :func:`parse_target` / :func:`as_query_request` — request → resolver input (:mod:`.translate`).

Errors are drawn in :mod:`ark_mesh.responses_reconciler.errors`.
"""

from ark_mesh.responses_reconciler.config import SERVICE_NAME, ResponsesReconcilerConfig
from ark_mesh.responses_reconciler.errors import (
    InvalidRequestError,
    ResponsesError,
    UnknownTargetError,
)
from ark_mesh.responses_reconciler.handler import ResponsesWork
from ark_mesh.responses_reconciler.service import ResponsesReconcilerService
from ark_mesh.responses_reconciler.sink import ResponsesSink, chunk_msg_id, result_msg_id
from ark_mesh.responses_reconciler.translate import (
    Target,
    as_query_request,
    earlier_messages,
    last_user_text,
    parse_target,
)

__all__ = [
    "SERVICE_NAME",
    "InvalidRequestError",
    "ResponsesError",
    "ResponsesReconcilerConfig",
    "ResponsesReconcilerService",
    "ResponsesSink",
    "ResponsesWork",
    "Target",
    "UnknownTargetError",
    "as_query_request",
    "chunk_msg_id",
    "earlier_messages",
    "last_user_text",
    "parse_target",
    "result_msg_id",
]
