"""Read-only ark-api views of Agents, Models, Teams and Tools, and OpenAI's model list.

Ark's CLI and dashboard list what a query can target through ark-api (``GET /v1/agents`` …,
``GET /openai/v1/models``). The broker answers them from the resource store the reconcilers
resolve targets with (the shared ``resources`` section: a watch cache of the cluster, or
manifests), so a listing never reaches the API server and shows exactly what a query can run.

The shapes are ark-api's: a summary per item in a listing, a detail answer for one object, and
cursor pages ``{items, count, continue_token, remaining_item_count}`` over ``?limit=`` and
``?continue=``. Kubernetes' continue token is opaque, and so is this one: it encodes the name
the next page starts at, so a page is stable while objects come and go before it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

import msgspec

from ark_mesh.broker.errors import BadRequestError, NotFoundError, UnavailableError
from ark_mesh.broker.responses import (
    AgentDetailResponse,
    AgentResponse,
    Availability,
    ModelDetailResponse,
    ModelResponse,
    OpenAIModel,
    OpenAIModelList,
    TeamDetailResponse,
    TeamResponse,
    ToolDetailResponse,
    ToolResponse,
)
from ark_mesh.contracts import Agent, Model, Resource, Team, Tool
from ark_mesh.contracts.ark import A2A_SERVER_ADDRESS_ANNOTATION

__all__ = ["DEFAULT_PAGE_LIMIT", "MAX_PAGE_LIMIT", "Catalog", "ResourceReader"]

R = TypeVar("R", bound=Resource)

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000
_SKILLS = re.compile(r"a2a\..*/skills$")


class ResourceReader(Protocol):
    """What the catalog needs of a resource store (the resolver's ``ResourceStore`` port)."""

    async def get(self, kind: type[R], namespace: str, name: str) -> R | None: ...

    async def list(
        self, kind: type[R], namespace: str, label_selector: Mapping[str, Any] | None = None
    ) -> list[R]: ...


def _raw(obj: Resource) -> dict[str, Any]:
    raw = msgspec.to_builtins(obj)
    return raw if isinstance(raw, dict) else {}


def _availability(raw: Mapping[str, Any], condition: str) -> Availability:
    for entry in (raw.get("status") or {}).get("conditions") or []:
        if isinstance(entry, dict) and entry.get("type") == condition:
            status = entry.get("status")
            return status if status in ("True", "False") else "Unknown"
    return "Unknown"


def _names(raw: Mapping[str, Any]) -> tuple[str, str]:
    meta = raw.get("metadata") or {}
    return str(meta.get("name") or ""), str(meta.get("namespace") or "")


def _annotations(raw: Mapping[str, Any]) -> dict[str, str]:
    return dict((raw.get("metadata") or {}).get("annotations") or {})


# --------------------------------------------------------------------------- ark-api shapes


def agent_summary(obj: Agent) -> AgentResponse:
    raw = _raw(obj)
    spec = raw.get("spec") or {}
    name, namespace = _names(raw)
    return AgentResponse(
        name=name,
        namespace=namespace,
        description=spec.get("description"),
        model_ref=(spec.get("modelRef") or {}).get("name"),
        prompt=spec.get("prompt"),
        available=_availability(raw, "Available"),
        annotations=_annotations(raw),
    )


def agent_detail(obj: Agent) -> AgentDetailResponse:
    raw = _raw(obj)
    spec = raw.get("spec") or {}
    name, namespace = _names(raw)
    annotations = _annotations(raw)
    skills: list[Any] = []
    for key, value in annotations.items():
        if _SKILLS.search(key):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = []
            skills = parsed if isinstance(parsed, list) else []
            break
    return AgentDetailResponse(
        name=name,
        namespace=namespace,
        description=spec.get("description"),
        execution_engine=spec.get("executionEngine"),
        model_ref=spec.get("modelRef"),
        parameters=spec.get("parameters"),
        prompt=spec.get("prompt"),
        tools=spec.get("tools"),
        overrides=spec.get("overrides"),
        skills=skills,
        is_a2a=A2A_SERVER_ADDRESS_ANNOTATION in annotations,
        available=_availability(raw, "Available"),
        status=raw.get("status"),
        annotations=annotations,
    )


def _provider(spec: Mapping[str, Any]) -> str:
    """``spec.provider``, else the deprecated provider-as-type (Ark's fallback)."""
    provider = spec.get("provider")
    if provider:
        return str(provider)
    kind = spec.get("type")
    return str(kind) if kind in ("openai", "azure", "bedrock") else ""


def _model_name(spec: Mapping[str, Any]) -> str:
    model = spec.get("model")
    if isinstance(model, dict):
        return str(model.get("value") or "")
    return str(model or "")


def model_summary(obj: Model) -> ModelResponse:
    raw = _raw(obj)
    spec = raw.get("spec") or {}
    name, namespace = _names(raw)
    return ModelResponse(
        name=name,
        namespace=namespace,
        type=str(spec.get("type") or "completions"),
        provider=_provider(spec),
        model=_model_name(spec),
        available=_availability(raw, "ModelAvailable"),
        annotations=_annotations(raw),
    )


def model_detail(obj: Model) -> ModelDetailResponse:
    raw = _raw(obj)
    spec = raw.get("spec") or {}
    name, namespace = _names(raw)
    config: dict[str, dict[str, Any]] = {}
    for provider, settings in (spec.get("config") or {}).items():
        if isinstance(settings, dict):
            config[provider] = {
                key: value if isinstance(value, dict | list) else {"value": str(value)}
                for key, value in settings.items()
            }
    return ModelDetailResponse(
        name=name,
        namespace=namespace,
        type=str(spec.get("type") or "completions"),
        provider=_provider(spec),
        model=_model_name(spec),
        config=config,
        available=_availability(raw, "ModelAvailable"),
        resolved_address=(raw.get("status") or {}).get("resolvedAddress"),
        annotations=_annotations(raw),
    )


def team_summary(obj: Team) -> TeamResponse:
    raw = _raw(obj)
    spec = raw.get("spec") or {}
    name, namespace = _names(raw)
    members = spec.get("members") or []
    return TeamResponse(
        name=name,
        namespace=namespace,
        description=spec.get("description"),
        strategy=spec.get("strategy"),
        members_count=len(members) if members else None,
        status=(raw.get("status") or {}).get("phase"),
    )


def team_detail(obj: Team) -> TeamDetailResponse:
    raw = _raw(obj)
    spec = raw.get("spec") or {}
    name, namespace = _names(raw)
    return TeamDetailResponse(
        name=name,
        namespace=namespace,
        description=spec.get("description"),
        members=list(spec.get("members") or []),
        strategy=str(spec.get("strategy") or ""),
        graph=spec.get("graph"),
        loops=bool(spec.get("loops") or False),
        max_turns=spec.get("maxTurns"),
        selector=spec.get("selector"),
        available=_availability(raw, "Available"),
        status=raw.get("status"),
    )


def tool_summary(obj: Tool) -> ToolResponse:
    raw = _raw(obj)
    spec = raw.get("spec") or {}
    meta = raw.get("metadata") or {}
    name, namespace = _names(raw)
    return ToolResponse(
        name=name,
        namespace=namespace,
        description=spec.get("description"),
        labels=meta.get("labels"),
        annotations=meta.get("annotations"),
        type=spec.get("type"),
    )


def tool_detail(obj: Tool) -> ToolDetailResponse:
    raw = _raw(obj)
    meta = raw.get("metadata") or {}
    name, namespace = _names(raw)
    spec = raw.get("spec") or {}
    return ToolDetailResponse(
        name=name,
        namespace=namespace,
        description=spec.get("description"),
        labels=meta.get("labels"),
        annotations=meta.get("annotations"),
        spec=spec,
        status=raw.get("status"),
    )


# --------------------------------------------------------------------------- pages


def encode_continue(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def decode_continue(token: str) -> str:
    """The name a continue token starts at; a token this broker did not make is a 400."""
    try:
        name = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        name = ""
    if not name:
        raise BadRequestError(
            "continue is not a token from a previous page", field="continue", status=400
        )
    return name


def parse_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_LIMIT
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_PAGE_LIMIT:
        raise BadRequestError(
            f"limit must be an integer from 1 to {MAX_PAGE_LIMIT}, got {value!r}",
            field="limit",
            status=400,
        )
    return int(value)


class Catalog:
    """Pages and single objects of one kind of the tenant's namespace, from ``store``."""

    def __init__(self, store: ResourceReader | None) -> None:
        self.store = store

    def _reader(self) -> ResourceReader:
        if self.store is None:
            raise UnavailableError(
                "this broker reads no resources: its configuration has neither a resources "
                "nor a kubernetes section"
            )
        return self.store

    async def objects(self, kind: type[R], namespace: str) -> list[R]:
        """Every object of ``kind`` in ``namespace``, by name (a cache limited to other
        namespaces has none here)."""
        try:
            found = await self._reader().list(kind, namespace)
        except ValueError:
            return []
        except TimeoutError as exc:
            raise UnavailableError(f"the {kind.KIND} cache is not synced: {exc}") from exc
        return sorted(found, key=lambda obj: obj.metadata.name)

    async def page(
        self, kind: type[R], namespace: str, *, limit: int, continue_token: str | None
    ) -> tuple[list[R], str | None, int | None]:
        """One page: the objects, the token of the next page, how many remain after it."""
        objects = await self.objects(kind, namespace)
        if continue_token is not None:
            start = decode_continue(continue_token)
            objects = [obj for obj in objects if obj.metadata.name >= start]
        page, rest = objects[:limit], objects[limit:]
        if not rest:
            return page, None, None
        return page, encode_continue(rest[0].metadata.name), len(rest)

    async def one(self, kind: type[R], namespace: str, name: str) -> R:
        try:
            found = await self._reader().get(kind, namespace, name)
        except ValueError:
            found = None
        except TimeoutError as exc:
            raise UnavailableError(f"the {kind.KIND} cache is not synced: {exc}") from exc
        if found is None:
            raise NotFoundError(
                f"{kind.KIND} {name!r} not found in namespace {namespace!r}", field="name"
            )
        return found

    async def openai_models(self, namespace: str) -> OpenAIModelList:
        """Every target of the namespace as OpenAI's model list: ``agent/<name>``, ``team/…``,
        ``model/…``, ``tool/…``, ``created`` the object's creation time (now when unknown)."""
        data: list[OpenAIModel] = []
        kinds: tuple[tuple[str, type[Resource]], ...] = (
            ("agent", Agent),
            ("team", Team),
            ("model", Model),
            ("tool", Tool),
        )
        for prefix, kind in kinds:
            for obj in await self.objects(kind, namespace):
                data.append(
                    OpenAIModel(
                        id=f"{prefix}/{obj.metadata.name}",
                        created=_created(obj.metadata.creation_timestamp),
                    )
                )
        return OpenAIModelList(data=data)


def _created(timestamp: str | None) -> int:
    if timestamp:
        try:
            return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())
        except ValueError:
            pass
    return int(time.time())
