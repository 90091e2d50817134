"""Admission for Ark's kinds: validation and defaulting webhooks served by the controller.

Ark enforces its rules at apply time with webhooks in its controller; ark-mesh does the same,
so ``kubectl apply`` of an invalid Agent, Query, Team, ... is refused with Ark's message on a
real cluster and on the emulator alike. The rules are pure functions over the raw object
(:mod:`.rules`, :mod:`.defaults`); :mod:`.server` serves them, :mod:`.registration` names the
routes and webhook configurations, :mod:`.certs` and :mod:`.bootstrap` provide the TLS trust.
(The server is imported from its module: it needs the controller's config, which needs
the names registered here.)
"""

from ark_mesh.controller.admission.certs import ServingCertificate, self_signed
from ark_mesh.controller.admission.registration import (
    ADMITTED_KINDS,
    CONFIGURATION_RESOURCES,
    MUTATING_CONFIGURATION,
    VALIDATING_CONFIGURATION,
    AdmittedKind,
    webhook_configurations,
)

__all__ = [
    "ADMITTED_KINDS",
    "CONFIGURATION_RESOURCES",
    "MUTATING_CONFIGURATION",
    "VALIDATING_CONFIGURATION",
    "AdmittedKind",
    "ServingCertificate",
    "self_signed",
    "webhook_configurations",
]
