"""One model call: forward its chunks, rebuild the assistant message, count tokens.

The call is streamed from the provider only when the query's streaming decision says so
(:mod:`ark_mesh.resolver.streaming`); a plain call's answer arrives as a single chunk, so the
code below reads both the same way. Tool-call deltas arrive in fragments keyed by ``index`` (the
first carries ``id`` and ``function.name``, later ones pieces of ``function.arguments``); they
are forwarded as they come and accumulated here into complete calls. Usage arrives in the last
chunk (``include_usage``) or with the plain answer, and is added to the query's total, whoever
made the call (member, selector, agent-as-tool). A streamed answer without a usage chunk (some
providers ignore ``include_usage``) counts zero tokens, as in Ark, and the query's
``tokenUsage`` then stays unset.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ark_mesh.contracts import TokenUsage
from ark_mesh.resolver.context import QueryRun, Scope
from ark_mesh.resolver.ports import ChatMessage, ChatRequest, ModelEndpoint
from ark_mesh.resolver.tracing import inject_trace_headers

__all__ = ["Completion", "complete"]


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Completion:
    """The assistant message of one call (``tool_calls`` present only when the model asked)."""

    message: ChatMessage
    usage: TokenUsage
    finish_reason: str | None

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return list(self.message.get("tool_calls") or [])


async def complete(
    run: QueryRun, scope: Scope, endpoint: ModelEndpoint, request: ChatRequest
) -> Completion:
    """Make one chat completion, reporting it as an ``LLMCall`` operation.

    A resumed run takes the answer from its step log instead (no call, no chunks, no events;
    the usage still counts), and a live answer is recorded there before it is returned.
    """
    speaker = scope.agent or endpoint.name
    recorded = run.journal.replay_model(speaker)
    if recorded is not None:
        run.add_usage(recorded.usage)
        run.llm_calls += 1
        replayed = dict(recorded.message)
        finish = "tool_calls" if replayed.get("tool_calls") else "stop"
        return Completion(message=replayed, usage=recorded.usage, finish_reason=finish)
    data = {"model": endpoint.name, "modelId": endpoint.model, "provider": endpoint.provider}
    if scope.agent:
        data["agent"] = scope.agent
    if scope.team:
        data["team"] = scope.team
    async with run.report.operation("LLMCall", f"Calling model {endpoint.name}", data) as details:
        text: list[str] = []
        calls: dict[int, _PartialCall] = {}
        usage = TokenUsage()
        finish_reason = None
        # The provider's request continues this trace (the LLMCall span is current here).
        traced = replace(request, headers=inject_trace_headers(request.headers))
        async with run.models.stream(endpoint, traced, streamed=run.streams_model_calls) as chunks:
            async for chunk in chunks:
                await run.report.forward(chunk, scope.with_(model=endpoint.name))
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    finish_reason = choice.finish_reason or finish_reason
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                    for fragment in delta.tool_calls or []:
                        call = calls.setdefault(fragment.index, _PartialCall())
                        if fragment.id:
                            call.id = fragment.id
                        if fragment.function is not None:
                            if fragment.function.name:
                                call.name = fragment.function.name
                            if fragment.function.arguments:
                                call.arguments.append(fragment.function.arguments)
        run.add_usage(usage)
        run.llm_calls += 1
        details.update(
            promptTokens=str(usage.prompt_tokens),
            completionTokens=str(usage.completion_tokens),
            totalTokens=str(usage.total_tokens),
            cachedTokens=str(usage.cached_tokens),
        )
    message: ChatMessage = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id or f"call_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": "".join(call.arguments) or "{}"},
            }
            for index, call in sorted(calls.items())
        ]
    elif message["content"] is None:
        message["content"] = ""
    await run.journal.model_done(speaker, message, usage)
    return Completion(message=message, usage=usage, finish_reason=finish_reason)
