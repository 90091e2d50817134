"""A2AServer discovery: read the server's agent card and keep one ``Agent`` for it, as Ark does —
named after the card (RFC 1123 friendly), ``executionEngine.name: a2a``, labelled ``a2a/server``,
owned by the server, and annotated with the server's name, resolved address and the card's
skills (``ark.mckinsey.com/a2a-server-name``/``-address``/``-skills``), which is what the resolver
reads to proxy a query to the server. ``Ready`` / ``Discovering`` carry Ark's reasons.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from ark_mesh.contracts import A2AServer, Agent, Resource
from ark_mesh.contracts.ark import A2A_SERVER_ADDRESS_ANNOTATION, A2A_SERVER_NAME_ANNOTATION
from ark_mesh.controller.resource_controllers.skeleton import (
    Event,
    Observed,
    ReconcileContext,
    condition,
    find_condition,
    inherited_annotations,
    owner_reference,
    poll_interval,
)
from ark_mesh.kube import KubeError
from ark_mesh.resolver import (
    A2AError,
    A2AUnavailableError,
    ResolutionError,
    ValueResolver,
    fetch_agent_card,
)

__all__ = [
    "A2A_SERVER_LABEL",
    "A2A_SERVER_SKILLS_ANNOTATION",
    "A2AServerDiscovery",
    "a2a_agent_name",
]

A2A_SERVER_LABEL = "a2a/server"
A2A_SERVER_SKILLS_ANNOTATION = "ark.mckinsey.com/a2a-server-skills"
READY = "Ready"
DISCOVERING = "Discovering"
A2A_ENGINE = "a2a"
DISCOVERING_AGENTS = condition(
    DISCOVERING, "True", "DiscoveringAgents", "Discovering agents from A2A server"
)


def a2a_agent_name(card_name: str) -> str:
    return card_name.replace("_", "-").replace(" ", "-").lower()


@dataclass(frozen=True, slots=True)
class CardFetch:
    card: Mapping[str, Any] | None = None
    error: str | None = None


def _agent_body(server: A2AServer, address: str, card: Mapping[str, Any]) -> dict[str, Any]:
    name = str(card["name"])
    description = str(card.get("description") or "")
    skills = json.dumps(card.get("skills") or [], separators=(",", ":"))
    annotations = {
        **inherited_annotations(server),
        A2A_SERVER_NAME_ANNOTATION: server.metadata.name,
        A2A_SERVER_ADDRESS_ANNOTATION: address,
        A2A_SERVER_SKILLS_ANNOTATION: skills,
    }
    spec: dict[str, Any] = {
        "prompt": f"You are {name}. {description}",
        "executionEngine": {"name": A2A_ENGINE},
    }
    if description:
        spec["description"] = description
    return {
        "apiVersion": Agent.api_version_string(),
        "kind": Agent.KIND,
        "metadata": {
            "name": a2a_agent_name(name),
            "namespace": server.metadata.namespace or "",
            "labels": {A2A_SERVER_LABEL: server.metadata.name},
            "annotations": annotations,
            "ownerReferences": [owner_reference(server, controller=False)],
        },
        "spec": spec,
    }


def _skills(body: Mapping[str, Any]) -> Any:
    return ((body.get("metadata") or {}).get("annotations") or {}).get(A2A_SERVER_SKILLS_ANNOTATION)


def _same_skills(stored: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    # Ark rewrites a discovered Agent only when the card's skills change.
    return bool(_skills(stored) == _skills(desired))


def _replace_agent(stored: dict[str, Any], desired: Mapping[str, Any]) -> None:
    stored["spec"] = desired["spec"]
    stored["metadata"]["annotations"] = desired["metadata"]["annotations"]


class A2AServerDiscovery:
    kind = A2AServer
    watches: tuple[type[Resource], ...] = (Agent,)

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def reconcile(self, server: A2AServer, ctx: ReconcileContext) -> Observed:
        interval = poll_interval(server.spec.poll_interval)
        values = ValueResolver(ctx.store, server.metadata.namespace or "")
        what = f"A2A server '{server.metadata.name}'"
        try:
            address = await values.required(server.spec.address, what=f"{what} address")
            headers = await values.headers(server.spec.headers, what=what)
        except (ResolutionError, KubeError):
            return Observed(
                conditions=[
                    condition(
                        DISCOVERING,
                        "False",
                        "AddressResolutionFailed",
                        "Cannot attempt discovery due to address resolution failure",
                    ),
                    condition(
                        READY,
                        "False",
                        "AddressResolutionFailed",
                        "Server not ready due to address resolution failure",
                    ),
                ],
                requeue_after=interval,
            )

        async def fetch() -> CardFetch:
            try:
                return CardFetch(
                    card=await fetch_agent_card(self._http(), address, headers=headers)
                )
            except (A2AError, A2AUnavailableError) as exc:
                return CardFetch(error=str(exc))

        result = ctx.checks.latest(
            ctx.ref,
            (server.metadata.generation, address, tuple(sorted(headers.items()))),
            interval,
            fetch,
            lambda seconds: CardFetch(error=f"no agent card within {seconds:g}s"),
        )
        status = {"lastResolvedAddress": address}
        if result is None:
            if find_condition(server, READY) is not None:
                return Observed(status=status, requeue_after=interval)
            return Observed(
                status=status,
                conditions=[
                    condition(READY, "False", "Initializing", "A2AServer is being initialized"),
                    condition(
                        DISCOVERING, "True", "StartingDiscovery", "Starting agent discovery process"
                    ),
                ],
                requeue_after=interval,
            )
        if result.card is None:
            return Observed(
                status=status,
                conditions=[
                    DISCOVERING_AGENTS,
                    condition(
                        READY,
                        "False",
                        "DiscoveryFailed",
                        f"Server not ready due to discovery failure: {result.error}",
                    ),
                ],
                events=[
                    Event(
                        "AgentDiscoveryFailed",
                        f"Failed to discover agents from A2A server {address}: {result.error}",
                        "Warning",
                    )
                ],
                requeue_after=interval,
            )
        body = _agent_body(server, address, result.card)
        try:
            children = await ctx.sync_children(
                server, Agent, A2A_SERVER_LABEL, [body], same=_same_skills, update=_replace_agent
            )
        except KubeError as exc:
            return Observed(
                status=status,
                conditions=[
                    DISCOVERING_AGENTS,
                    condition(
                        READY, "False", "AgentCreationFailed", f"Failed to create agent: {exc}"
                    ),
                ],
                events=[
                    Event(
                        "AgentCreationFailed",
                        f"Failed to create A2A agent {result.card['name']}: {exc}",
                        "Warning",
                    )
                ],
                requeue_after=interval,
            )
        return Observed(
            status=status,
            conditions=[
                condition(DISCOVERING, "False", "DiscoveryComplete", "Agent discovery completed"),
                condition(READY, "True", "AgentDiscovered", "Successfully discovered agent"),
            ],
            depends_on=children,
            requeue_after=interval,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
