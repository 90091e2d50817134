"""HTTP tools (Tool ``type: http``): one HTTP request per call.

``{param}`` placeholders in the URL are filled with URL-escaped arguments; the body (POST, PUT,
PATCH only) is a template over ``.input.<argument>`` and the tool's ``bodyParameters``. A status
of 400 or more, an unreachable endpoint, a timeout (default 30s) or a body over 10 MB is a tool
error, which fails the query as in Ark.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from ark_mesh.contracts import HTTPToolSpec
from ark_mesh.resolver.errors import ResolutionError, ToolExecutionError
from ark_mesh.resolver.templates import render
from ark_mesh.resolver.tools.base import ToolResult, function_definition

if TYPE_CHECKING:
    from ark_mesh.resolver.context import QueryRun, Scope

__all__ = ["DEFAULT_TIMEOUT", "MAX_RESPONSE_BYTES", "HTTPTool"]

DEFAULT_TIMEOUT = 30.0
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class HTTPTool:
    kind = "http"

    def __init__(
        self,
        *,
        name: str,
        description: str | None,
        input_schema: Mapping[str, Any] | None,
        spec: HTTPToolSpec,
        headers: Mapping[str, str],
        body_values: Mapping[str, str],
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        self._description = description
        self._schema = input_schema
        self._spec = spec
        self._headers = dict(headers)
        self._body_values = dict(body_values)
        self._timeout = timeout

    def definition(self) -> dict[str, Any]:
        return function_definition(self.name, self._description, self._schema)

    def url(self, arguments: Mapping[str, Any]) -> str:
        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in arguments:
                raise ToolExecutionError(
                    self.name,
                    f"tool '{self.name}': URL needs argument '{key}', which was not given",
                )
            return quote(str(arguments[key]), safe="")

        return _PLACEHOLDER.sub(fill, self._spec.url)

    async def execute(
        self, run: QueryRun, scope: Scope, arguments: Mapping[str, Any]
    ) -> ToolResult:
        url = self.url(arguments)
        method = (self._spec.method or "GET").upper()
        body: str | None = None
        headers = dict(self._headers)
        if method in _BODY_METHODS and self._spec.body:
            try:
                body = render(
                    self._spec.body,
                    {**self._body_values, "input": dict(arguments)},
                    where=f"tool '{self.name}' body",
                )
            except ResolutionError as exc:
                raise ToolExecutionError(self.name, str(exc)) from exc
            if not any(key.lower() == "content-type" for key in headers):
                headers["Content-Type"] = "application/json"
        try:
            async with run.http.request(
                method,
                url,
                headers=headers,
                data=body,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                payload = bytearray()
                async for piece in response.content.iter_chunked(65536):
                    payload.extend(piece)
                    if len(payload) > MAX_RESPONSE_BYTES:
                        raise ToolExecutionError(
                            self.name,
                            f"tool '{self.name}': response from {url} exceeds "
                            f"{MAX_RESPONSE_BYTES // (1024 * 1024)} MB",
                        )
                text = payload.decode(response.charset or "utf-8", errors="replace")
                if response.status >= 400:
                    raise ToolExecutionError(
                        self.name,
                        f"tool '{self.name}': {method} {url} returned HTTP {response.status}: "
                        f"{text[:500]}",
                    )
        except TimeoutError as exc:
            raise ToolExecutionError(
                self.name, f"tool '{self.name}': {method} {url} timed out after {self._timeout:g}s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ToolExecutionError(
                self.name, f"tool '{self.name}': {method} {url} failed: {exc}"
            ) from exc
        return ToolResult(text)
