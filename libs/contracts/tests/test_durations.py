"""Go duration strings parse the way Go parses them and print the way Go prints them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ark_mesh.contracts import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", timedelta(minutes=5)),
        ("720h0m0s", timedelta(hours=720)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1ms", timedelta(milliseconds=1)),
        ("1.5s", timedelta(seconds=1.5)),
        ("250us", timedelta(microseconds=250)),
        ("-2m", timedelta(minutes=-2)),
        ("0", timedelta(0)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=5), "5m0s"),
        (timedelta(hours=720), "720h0m0s"),
        (timedelta(seconds=1.532), "1.532s"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(0), "0s"),
        (timedelta(minutes=1, seconds=30), "1m30s"),
    ],
)
def test_format_like_go(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "m5", "1d", "1h-5m"])
def test_invalid_duration_names_the_input(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["2562048h", "9999999999999999h", "9" * 400 + "s", "-2562048h"])
def test_longer_than_gos_int64_nanoseconds_is_invalid(text: str) -> None:
    # Go refuses these; accepting them would overflow timedelta or the deadline made from it.
    with pytest.raises(DurationError, match="2562047h"):
        parse_duration(text)


def test_the_longest_go_duration_parses() -> None:
    assert parse_duration("2562047h") == timedelta(hours=2562047)
