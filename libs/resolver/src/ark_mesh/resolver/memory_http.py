"""Ark's memory HTTP API (the ark-broker's ``/conversations`` and ``/messages``) as a store.

Existing Ark brokers keep working as the memory of ark-mesh queries. History is read page by
page (``cursor`` is exclusive, ``hasMore``/``nextCursor`` drive the walk) until the end, so long
conversations are not silently truncated to the first page as Ark's executor does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from ark_mesh.resolver.errors import MemoryBackendError
from ark_mesh.resolver.ports import ChatMessage

__all__ = ["HTTPMemoryStore"]


class HTTPMemoryStore:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        address: str,
        headers: Mapping[str, str] | None = None,
        *,
        page_size: int = 100,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self.address = address.rstrip("/")
        self._headers = dict(headers or {})
        self._page_size = page_size
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _call(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, json: Any = None
    ) -> Any:
        url = f"{self.address}{path}"
        try:
            async with self._session.request(
                method, url, params=params, json=json, headers=self._headers, timeout=self._timeout
            ) as response:
                if response.status >= 400:
                    detail = (await response.text())[:300]
                    raise MemoryBackendError(
                        f"memory {method} {path} answered HTTP {response.status}: {detail}"
                    )
                if response.content_length == 0 or response.status == 204:
                    return None
                text = await response.text()
                if not text.strip():
                    return None
                try:
                    return await response.json(content_type=None)
                except ValueError as exc:
                    raise MemoryBackendError(f"memory {method} {path} answered non-JSON") from exc
        except TimeoutError as exc:
            raise MemoryBackendError(f"memory {method} {url} timed out") from exc
        except aiohttp.ClientError as exc:
            raise MemoryBackendError(f"memory {method} {url} failed: {exc}") from exc

    async def create_conversation(self) -> str:
        answer = await self._call("POST", "/conversations", json={})
        conversation_id = answer.get("conversation_id") if isinstance(answer, dict) else None
        if not isinstance(conversation_id, str) or not conversation_id:
            raise MemoryBackendError("memory POST /conversations returned no conversation_id")
        return conversation_id

    async def get_messages(self, conversation_id: str) -> list[ChatMessage]:
        messages: list[ChatMessage] = []
        cursor: str | None = None
        while True:
            params = {"conversation_id": conversation_id, "limit": str(self._page_size)}
            if cursor is not None:
                params["cursor"] = cursor
            page = await self._call("GET", "/messages", params=params)
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise MemoryBackendError("memory GET /messages returned no items list")
            for item in page["items"]:
                message = item.get("message") if isinstance(item, dict) else None
                if isinstance(message, dict):
                    messages.append(message)
            next_cursor = page.get("nextCursor")
            if not page.get("hasMore") or next_cursor in (None, ""):
                return messages
            if str(next_cursor) == cursor:
                raise MemoryBackendError("memory GET /messages repeated its cursor")
            cursor = str(next_cursor)

    async def add_messages(
        self, conversation_id: str, query_id: str, messages: Sequence[ChatMessage]
    ) -> None:
        await self._call(
            "POST",
            "/messages",
            json={
                "conversation_id": conversation_id,
                "query_id": query_id,
                "messages": list(messages),
            },
        )
