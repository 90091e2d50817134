"""Mode selection: default, per-query annotation, refusal that says why."""

from __future__ import annotations

import pytest

from ark_mesh.contracts.ark import RECONCILIATION_ANNOTATION
from ark_mesh.controller.modes import ModeRefused, choose_mode

FLEXIBLE = ("inController", "standalone")


def test_default_applies_without_annotation() -> None:
    assert choose_mode({}, "standalone", FLEXIBLE) == "standalone"
    assert choose_mode(None, "inController", ("inController",)) == "inController"


def test_annotation_picks_an_allowed_mode() -> None:
    annotations = {RECONCILIATION_ANNOTATION: "inController"}
    assert choose_mode(annotations, "standalone", FLEXIBLE) == "inController"


@pytest.mark.parametrize(
    ("annotation", "allowed", "fragment"),
    [
        (
            "inController",
            ("standalone", "broker"),
            "'inController' (annotation ark.mckinsey.com/reconciliation) is not allowed here; allowedModes: standalone, broker",
        ),
        ("fast", FLEXIBLE, "unknown reconciliation mode 'fast'"),
        ("broker", ("standalone", "broker"), "applies to queries submitted through the broker API"),
    ],
)
def test_refusal_names_mode_and_allowed(
    annotation: str, allowed: tuple[str, ...], fragment: str
) -> None:
    decision = choose_mode({RECONCILIATION_ANNOTATION: annotation}, "standalone", allowed)  # type: ignore[arg-type]
    assert isinstance(decision, ModeRefused)
    assert decision.requested == annotation
    assert fragment in decision.message


def test_disallowed_default_is_refused_too() -> None:
    decision = choose_mode({}, "inController", ("standalone",))
    assert isinstance(decision, ModeRefused)
    assert "defaultReconciliation" in decision.message
