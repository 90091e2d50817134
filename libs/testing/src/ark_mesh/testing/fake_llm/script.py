"""What the fake model answers, and to which request.

A *script* is an ordered list of rules. Each rule has a ``match`` (conditions on the incoming
request, all of which must hold) and one or more ``replies``. The first rule whose match holds
answers; each time it answers it moves to its next reply, so a rule with two replies drives an
agent loop (turn 1: a tool call, turn 2: the final answer). What happens after the last reply is
the rule's ``then``: keep repeating the last one (default), start over (``cycle``), or step aside
so later rules can answer (``exhaust``).

Scripts are plain data (msgspec Structs) so the same rules can be written in Python, loaded from a
YAML/JSON file for a subprocess server, or posted to the control endpoint of a running server. A
malformed rule is rejected with the path of the offending field.

Placeholders in reply ``content``: ``{{user}}`` is replaced by the last user message and
``{{tool}}`` by the last tool result, so a scripted final answer can prove the tool result reached
the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

__all__ = [
    "DEFAULT_MODELS",
    "Match",
    "ModelRequest",
    "Reply",
    "Rule",
    "RuleBook",
    "Script",
    "ScriptError",
    "ScriptedError",
    "ScriptedToolCall",
    "Usage",
    "load_script",
    "parse_rules",
    "render_content",
]

DEFAULT_MODELS = ("fake-model",)

Endpoint = Literal["chat", "responses", "embeddings"]


class ScriptError(ValueError):
    """A script or rule that cannot be used; the message names the offending field."""


class Usage(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Token figures reported for a reply. The defaults are Ark's mock-llm figures."""

    prompt_tokens: int = 50
    completion_tokens: int = 100
    total_tokens: int = 150
    cached_tokens: int = 0


class ScriptedToolCall(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One function call the model asks for; ``id`` is minted when not given."""

    name: str
    arguments: dict[str, Any] | str = msgspec.field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"))


class ScriptedError(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An HTTP error answer in OpenAI's error shape (429 carries ``Retry-After``)."""

    status: int
    message: str = "scripted failure"
    type: str | None = None
    code: str | None = None
    retry_after: float | None = None


class Reply(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One answer of the model.

    ``drop_after`` closes the connection after that many SSE chunks (0 = before any byte of a
    non-streamed answer), which is how a provider's mid-stream failure looks to a client.
    ``json`` is the document returned as content (the answer to a ``response_format`` request).
    ``stream_usage: false`` leaves the usage chunk out of a streamed chat answer even when the
    client asks for it (``include_usage``), as providers that report usage only on non-streamed
    answers do (Ark's mock-llm).
    """

    content: str | None = None
    tool_calls: list[ScriptedToolCall] = msgspec.field(default_factory=list)
    json_value: Any = msgspec.field(default=None, name="json")
    usage: Usage = msgspec.field(default_factory=Usage)
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_words: int = 1
    error: ScriptedError | None = None
    drop_after: int | None = None
    finish_reason: str | None = None
    stream_usage: bool = True

    def __post_init__(self) -> None:
        if self.chunk_words < 1:
            raise ValueError("chunk_words must be at least 1")
        if self.delay < 0 or self.chunk_delay < 0:
            raise ValueError("delay and chunk_delay must not be negative")


class Match(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Conditions on a request; every condition that is set must hold.

    ``user`` is a substring and ``user_regex`` a regular expression (``re.search``) of the last
    user message; ``system`` a substring of the system prompt; ``headers`` exact values
    (names case-insensitive); ``tool`` the name of a tool offered to the model; ``last_role``
    the role of the last message (``tool`` right after a tool result); ``stream`` whether the
    client asked for a streamed answer.
    """

    user: str | None = None
    user_regex: str | None = None
    system: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    model: str | None = None
    tool: str | None = None
    last_role: str | None = None
    endpoint: Endpoint | None = None
    stream: bool | None = None

    def __post_init__(self) -> None:
        if self.user_regex is not None:
            try:
                re.compile(self.user_regex)
            except re.error as exc:
                raise ValueError(f"user_regex is not a valid regular expression: {exc}") from exc

    def holds(self, request: ModelRequest) -> bool:
        if self.endpoint is not None and self.endpoint != request.endpoint:
            return False
        if self.model is not None and self.model != request.model:
            return False
        if self.user is not None and self.user not in request.last_user:
            return False
        if self.user_regex is not None and not re.search(self.user_regex, request.last_user):
            return False
        if self.system is not None and self.system not in request.system:
            return False
        if self.tool is not None and self.tool not in request.tool_names:
            return False
        if self.last_role is not None and self.last_role != request.last_role:
            return False
        if self.stream is not None and self.stream != request.stream:
            return False
        lowered = {k.lower(): v for k, v in request.headers.items()}
        return all(lowered.get(name.lower()) == value for name, value in self.headers.items())


class Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A match and the replies it gives, in order. ``reply`` is shorthand for one reply."""

    match: Match = msgspec.field(default_factory=Match)
    replies: list[Reply] = msgspec.field(default_factory=list)
    reply: Reply | None = None
    name: str | None = None
    then: Literal["repeat_last", "cycle", "exhaust"] = "repeat_last"

    def __post_init__(self) -> None:
        if self.reply is not None and self.replies:
            raise ValueError("give either reply or replies, not both")
        if self.reply is None and not self.replies:
            raise ValueError("a rule needs reply or replies")

    def sequence(self) -> list[Reply]:
        return [self.reply] if self.reply is not None else list(self.replies)


class Script(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A whole script file: rules plus the model ids listed by ``/v1/models``."""

    rules: list[Rule] = msgspec.field(default_factory=list)
    models: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_MODELS))


@dataclass(frozen=True)
class ModelRequest:
    """The parts of an incoming request that rules can match on, whatever the endpoint."""

    endpoint: Endpoint
    model: str
    headers: Mapping[str, str]
    last_user: str = ""
    system: str = ""
    last_role: str = ""
    last_tool: str = ""
    tool_names: frozenset[str] = frozenset()
    json_schema: Mapping[str, Any] | None = None
    stream: bool = False


def parse_rules(data: Any) -> list[Rule]:
    """Rules from decoded JSON/YAML: one rule, a list of rules, or ``{"rules": [...]}``."""
    if isinstance(data, Mapping) and "rules" in data:
        data = data["rules"]
    if isinstance(data, Mapping):
        data = [data]
    try:
        return msgspec.convert(data, list[Rule])
    except msgspec.ValidationError as exc:
        raise ScriptError(f"invalid rule: {exc}") from exc


def load_script(path: str | Path) -> Script:
    """Read a script from a ``.yaml``/``.yml``/``.json`` file."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"cannot read script {source}: {exc}") from exc
    try:
        data = json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ScriptError(f"script {source} is not valid {source.suffix[1:]}: {exc}") from exc
    if data is None:
        return Script()
    if isinstance(data, list):
        data = {"rules": data}
    try:
        return msgspec.convert(data, Script)
    except msgspec.ValidationError as exc:
        raise ScriptError(f"invalid script {source}: {exc}") from exc


@dataclass
class _Entry:
    rule: Rule
    permanent: bool
    answered: int = 0


@dataclass
class RuleBook:
    """The live rule list of a server, with each rule's position in its reply sequence.

    Rules loaded at start-up are *permanent*: ``reset`` rewinds them but keeps them, while rules
    added later (by a test) are dropped.
    """

    _entries: list[_Entry] = field(default_factory=list)

    def add(self, rules: Sequence[Rule], *, permanent: bool = False) -> None:
        self._entries.extend(_Entry(rule, permanent) for rule in rules)

    def reset(self) -> None:
        self._entries = [_Entry(e.rule, True) for e in self._entries if e.permanent]

    @property
    def rules(self) -> list[Rule]:
        return [entry.rule for entry in self._entries]

    def pick(self, request: ModelRequest) -> tuple[Rule, Reply] | None:
        """The answering rule and its reply (advancing the rule), or None when none answers."""
        for entry in self._entries:
            if not entry.rule.match.holds(request):
                continue
            replies = entry.rule.sequence()
            position = entry.answered
            if position >= len(replies):
                if entry.rule.then == "exhaust":
                    continue
                position = (
                    position % len(replies) if entry.rule.then == "cycle" else len(replies) - 1
                )
            entry.answered += 1
            return entry.rule, replies[position]
        return None


def render_content(content: str, request: ModelRequest) -> str:
    """Fill the ``{{user}}`` and ``{{tool}}`` placeholders of a scripted answer."""
    return content.replace("{{user}}", request.last_user).replace("{{tool}}", request.last_tool)
