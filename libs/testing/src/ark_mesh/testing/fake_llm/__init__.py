"""An OpenAI-compatible fake model server for tests: the project's only fake.

It is a real HTTP server (aiohttp) speaking OpenAI's wire protocol — chat completions (JSON and
SSE with tool-call deltas and usage), the Responses API, embeddings and models — so every client
under test, in this process or another, talks to it exactly as it would talk to a provider.
Replies are scripted by :class:`Rule` objects (see :mod:`.script`); unmatched requests get a
deterministic echo of the last user message.

In-process: ``async with FakeModelServer() as fake: fake.add_rule(...)``.
Subprocess: ``python -m ark_mesh.testing.fake_llm --port 0 --script rules.yaml``, or
:class:`FakeModelProcess`, scripted through :class:`FakeModelControl`.
"""

from ark_mesh.testing.fake_llm.process import (
    FakeModelControl,
    FakeModelProcess,
    FakeModelProcessError,
)
from ark_mesh.testing.fake_llm.script import (
    Match,
    Reply,
    Rule,
    Script,
    ScriptedError,
    ScriptedToolCall,
    ScriptError,
    Usage,
    load_script,
    parse_rules,
)
from ark_mesh.testing.fake_llm.server import FakeModelServer, RecordedRequest

__all__ = [
    "FakeModelControl",
    "FakeModelProcess",
    "FakeModelProcessError",
    "FakeModelServer",
    "Match",
    "RecordedRequest",
    "Reply",
    "Rule",
    "Script",
    "ScriptError",
    "ScriptedError",
    "ScriptedToolCall",
    "Usage",
    "load_script",
    "parse_rules",
]
