"""The shape of every service's configuration file: camelCase keys, nothing unknown.

The chart renders one config file per service from Helm values, and Helm users write camelCase.
Rendering the same names the services decode keeps keys untouched on the way, so a name chosen
by the user (a tenant ``team-a`` under ``bus.encryption.tenants``) arrives as written: an earlier
chart rewrote every map key to snake_case and silently turned ``team-a`` into ``team_a``.

Unknown keys are refused, naming the key, instead of being ignored: a misspelt or outdated
setting would otherwise be dropped without a word and the service would run on a default.
Every section of every service's config derives from :class:`ConfigSection`.
"""

from __future__ import annotations

import msgspec

__all__ = ["ConfigSection"]


class ConfigSection(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    """Base of every configuration Struct: frozen, keyword-only, camelCase, strict."""
