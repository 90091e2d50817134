"""The subject grammar: builders and parser round-trip, and bad tokens are named."""

from __future__ import annotations

import pytest

from ark_mesh.contracts import SubjectError, subjects
from ark_mesh.contracts.subjects import Subject, parse

CASES = [
    (subjects.work_query("team-a"), Subject("work", "team-a", "query"), "ARK_WORK"),
    (subjects.work_responses("t1"), Subject("work", "t1", "responses"), "ARK_WORK"),
    (subjects.work_embeddings("t1"), Subject("work", "t1", "embeddings"), "ARK_WORK"),
    (subjects.query_chunk("t1", "u-1"), Subject("query", "t1", "chunk", "u-1"), "ARK_CHUNKS"),
    (subjects.query_event("t1", "u-1"), Subject("query", "t1", "event", "u-1"), "ARK_EVENTS"),
    (subjects.query_status("t1", "u-1"), Subject("query", "t1", "status", "u-1"), "ARK_STATUS"),
    (subjects.query_result("t1", "r-1"), Subject("query", "t1", "result", "r-1"), "ARK_STATUS"),
    (subjects.query_cancel("t1", "u-1"), Subject("query", "t1", "cancel", "u-1"), None),
    (subjects.memory("t1", "conv-9"), Subject("memory", "t1", "conv-9"), "ARK_MEMORY"),
    (subjects.dlq("t1", "query"), Subject("dlq", "t1", "query"), "ARK_DLQ"),
]


@pytest.mark.parametrize(("subject", "parsed", "stream"), CASES, ids=[c[0] for c in CASES])
def test_build_parse_round_trip(subject: str, parsed: Subject, stream: str | None) -> None:
    assert parse(subject) == parsed
    assert str(parsed) == subject
    assert parsed.stream == stream


def test_tenant_is_the_second_token() -> None:
    assert subjects.query_chunk("team-a", "x").split(".")[1] == "team-a"


def test_every_built_subject_is_covered_by_its_stream_filter() -> None:
    for subject, parsed, stream in CASES:
        if stream is None:
            continue
        patterns = subjects.STREAM_SUBJECTS[stream]
        assert any(_matches(pattern, subject) for pattern in patterns), (subject, patterns)
        others = [s for s in subjects.STREAM_SUBJECTS if s != stream]
        for other in others:
            assert not any(_matches(p, subject) for p in subjects.STREAM_SUBJECTS[other]), other
        assert parsed.stream == stream


def _matches(pattern: str, subject: str) -> bool:
    p_tokens, s_tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(p_tokens):
        if token == ">":
            return len(s_tokens) > index
        if index >= len(s_tokens) or (token != "*" and token != s_tokens[index]):
            return False
    return len(p_tokens) == len(s_tokens)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: subjects.work_query("team.a"), "tenant token 'team.a' contains '.'"),
        (lambda: subjects.work_query("team*"), "tenant token 'team*' contains '*'"),
        (lambda: subjects.query_chunk("t", "a>b"), "query id token 'a>b' contains '>'"),
        (lambda: subjects.query_chunk("t", "a b"), "query id token 'a b' contains whitespace"),
        (lambda: subjects.memory("t", ""), "conversation id token is empty"),
        (lambda: subjects.dlq("t", "x.y"), "dead-letter kind token 'x.y' contains '.'"),
        (lambda: subjects.work("t", "evaluate"), "unknown work kind 'evaluate'"),  # type: ignore[arg-type]
    ],
)
def test_bad_tokens_are_named(build: object, message: str) -> None:
    with pytest.raises(SubjectError) as caught:
        build()  # type: ignore[operator]
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "subject",
    [
        "nats.t.work.query",
        "ark.t.work",
        "ark.t.work.evaluate",
        "ark.t.query.u.progress",
        "ark.t.query.u",
        "ark.t.memory.c.extra",
        "ark.t.other.x",
        "ark.*.work.query",
        "ark..work.query",
    ],
)
def test_parse_rejects_what_the_grammar_does_not_allow(subject: str) -> None:
    with pytest.raises(SubjectError):
        parse(subject)
