"""The broker: Ark's query API over the mesh, without etcd (ARCHITECTURE §2, broker mode).

* :class:`BrokerService` — the service (``python -m ark_mesh.broker --config FILE``);
* :class:`BrokerConfig` — its configuration (:mod:`.config`);
* :class:`QueryBroker` — accept, read, stream and cancel queries (:mod:`.queries`);
* :class:`EmbeddingsBroker` — embeddings requests and their results (:mod:`.embeddings`);
* :class:`ReadModel` / :class:`InFlight` — the ``ark-queries`` read model (:mod:`.readmodel`);
* :class:`ToolApprovals` — ark-api's tool approvals, both modes (:mod:`.approvals`);
* :func:`build_app` — the aiohttp routes (:mod:`.api`); :mod:`.bodies`, :mod:`.sse`,
  :mod:`.openai_compat` are the pure protocol parts; :mod:`.tenancy` maps callers to tenants.

The exception tree is drawn in :mod:`ark_mesh.broker.errors`.
"""

from ark_mesh.broker.api import build_app
from ark_mesh.broker.approvals import ToolApprovals
from ark_mesh.broker.bodies import (
    ChatCompletionRequest,
    EmbeddingsCreateRequest,
    QueryCreateRequest,
)
from ark_mesh.broker.config import (
    ApprovalsConfig,
    AuthConfig,
    BrokerConfig,
    HttpConfig,
    LimitsConfig,
    ReconciliationConfig,
    SSEConfig,
    TenantToken,
)
from ark_mesh.broker.embeddings import EmbeddingsBroker
from ark_mesh.broker.errors import (
    ApiError,
    BadRequestError,
    BrokerError,
    ConflictError,
    GatewayTimeoutError,
    NotFoundError,
    TooManyRequestsError,
    UnauthorizedError,
    UnavailableError,
)
from ark_mesh.broker.queries import QueryBroker
from ark_mesh.broker.readmodel import InFlight, QueryRecord, ReadModel
from ark_mesh.broker.service import BrokerService
from ark_mesh.broker.tenancy import TenantResolver, hash_token

__all__ = [
    "ApiError",
    "ApprovalsConfig",
    "AuthConfig",
    "BadRequestError",
    "BrokerConfig",
    "BrokerError",
    "BrokerService",
    "ChatCompletionRequest",
    "ConflictError",
    "EmbeddingsBroker",
    "EmbeddingsCreateRequest",
    "GatewayTimeoutError",
    "HttpConfig",
    "InFlight",
    "LimitsConfig",
    "NotFoundError",
    "QueryBroker",
    "QueryCreateRequest",
    "QueryRecord",
    "ReadModel",
    "ReconciliationConfig",
    "SSEConfig",
    "TenantResolver",
    "TenantToken",
    "TooManyRequestsError",
    "ToolApprovals",
    "UnauthorizedError",
    "UnavailableError",
    "build_app",
    "hash_token",
]
