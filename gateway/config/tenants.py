"""[[tenants]]: the data controllers one gateway system records for (regions of a national
line, say), each with the only keys to its own callers' recordings.

    [[tenants]]
    name = "north"
    recipients = ["age1..."]        # the region's own keys: each of its recordings is encrypted to them
    escrow = ["age1..."]            # optional: also to these (a national officer), off by default
    retention_days = 180            # optional: its routes' default ([recording] retention_days)

A route names its tenant (`tenant = "north"`); a call is recorded, and its caller's number
sealed, to that tenant's recipients and escrow only. Without [[tenants]] there is one implicit
tenant, unnamed, whose keys are [recording] recipients: everything works as it always did. With
tenants, [recording] recipients must be empty (a global key is what tenants exist to avoid) and
every route must name a tenant, or [recording] tenant must name the default."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .. import age
from ..errors import ConfigError, GatewayError
from .fields import suggest
from .routes import Route
from .values import parse_recipients

if TYPE_CHECKING:
    from .sections import RecordingConfig

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
KEYS = ("name", "recipients", "escrow", "retention_days")


@dataclass(frozen=True)
class Tenant:
    """A data controller whose calls are recorded to its own keys. name "" is the implicit
    tenant of a system without [[tenants]] (stored as no tenant at all)."""

    name: str
    recipients: tuple[age.AnyRecipient, ...]
    escrow: tuple[age.AnyRecipient, ...] = ()
    retention_days: int | None = None  # None: [recording] retention_days

    @property
    def sealing(self) -> list[age.AnyRecipient]:
        """Whom its recordings and its callers' numbers are encrypted to: its own recipients
        and its escrow."""
        return [*self.recipients, *self.escrow]

    @property
    def stored(self) -> str | None:
        """Its name as the index keeps it (None: the implicit tenant)."""
        return self.name or None


@dataclass(frozen=True)
class Tenants:
    """The system's tenants by name; without [[tenants]], the implicit one alone."""

    listed: tuple[Tenant, ...]
    implicit: Tenant  # [recording] recipients (empty when tenants are listed)

    @classmethod
    def of(cls, listed: list[Tenant], recipients: list[age.AnyRecipient]) -> Tenants:
        """[[tenants]] as listed; without any, one implicit tenant with `recipients`."""
        return cls(tuple(listed), Tenant("", () if listed else tuple(recipients)))

    def get(self, name: str | None) -> Tenant:
        """The tenant of this name, as a route or an index row names it (None or "": the
        implicit tenant: every recording made before tenants were configured). KeyError: no
        such tenant is configured (any more)."""
        if not name:
            return self.implicit
        for t in self.listed:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def all(self) -> list[Tenant]:
        return [*self.listed] if self.listed else [self.implicit]

    @property
    def records(self) -> bool:
        """Whether any call can be recorded: some tenant has keys to encrypt to."""
        return any(t.recipients for t in self.all)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.listed]

    def require(self, *names: str) -> None:
        """Refuse names that are not configured tenants, as a command or a scope gives them (a
        typo would otherwise match nothing, silently)."""
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise GatewayError(
                f"no tenant {', '.join(map(repr, unknown))} in [[tenants]] "
                f"(configured: {', '.join(self.names) or 'none'}){suggest(unknown[0], self.names)}"
            )


def load_tenants(raw: Any) -> list[Tenant]:
    """The [[tenants]] tables (none: an empty list)."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise ConfigError("[[tenants]] must be an array of tables")
    tenants: list[Tenant] = []
    for i, entry in enumerate(raw):
        where = f"[[tenants]] #{i + 1}"
        for key in entry:
            if key not in KEYS:
                raise ConfigError(f"unknown setting {key!r} in {where}{suggest(key, list(KEYS))}")
        name = entry.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise ConfigError(
                f"{where} needs a name of 1 to 32 lowercase letters, digits, '-' or '_', "
                f"starting with a letter or digit (got {name!r})"
            )
        where = f'[[tenants]] "{name}"'
        if any(t.name == name for t in tenants):
            raise ConfigError(f"{where} is listed twice")
        recipients = _recipients(entry, "recipients", where)
        if not recipients:
            raise ConfigError(
                f"{where} recipients is empty: a tenant's recordings are encrypted to its own keys "
                "(age recipients, as `age-keygen -y key.txt` prints them)"
            )
        escrow = _recipients(entry, "escrow", where)
        try:
            age.check_kinds([*recipients, *escrow])
        except ValueError as e:
            raise ConfigError(f"{where} recipients and escrow: {e}") from None
        retention = entry.get("retention_days")
        if retention is not None and (
            not isinstance(retention, int) or isinstance(retention, bool) or retention < 1
        ):
            raise ConfigError(
                f"{where} retention_days must be a whole number of days >= 1, got {retention!r}"
            )
        tenants.append(Tenant(name, tuple(recipients), tuple(escrow), retention))
    return tenants


def bind_routes(
    routes: list[Route], tenants: Tenants, raw_routes: Any, recording: RecordingConfig
) -> list[Route]:
    """Check that every route names a configured tenant (with tenants) or none (without), and
    give a route that does not set retention_days its tenant's."""
    explicit = [isinstance(r, dict) and "retention_days" in r for r in raw_routes or []]
    bound = []
    for i, route in enumerate(routes):
        where = f"[[routes]] #{i + 1} (number {route.number!r})" if raw_routes else "the default route"
        if not tenants.listed:
            if route.tenant:
                raise ConfigError(f"{where} names tenant {route.tenant!r}, but no [[tenants]] are configured")
            bound.append(route)
            continue
        if not route.tenant:
            raise ConfigError(
                f"{where} names no tenant: with [[tenants]], each call is recorded to one tenant's "
                f"keys; set tenant = one of {tenants.names} on the route, or [recording] tenant"
            )
        try:
            tenant = tenants.get(route.tenant)
        except KeyError:
            raise ConfigError(
                f"{where} names tenant {route.tenant!r}, which is not in [[tenants]]"
                f"{suggest(route.tenant, tenants.names)}"
            ) from None
        if tenant.retention_days is not None and not (i < len(explicit) and explicit[i]):
            route = replace(route, retention_days=tenant.retention_days)
        bound.append(route)
    if tenants.listed and recording.recipients:
        raise ConfigError(
            "[recording] recipients must be empty with [[tenants]]: each tenant's recordings are "
            "encrypted to its own recipients (and its escrow); move these keys to the tenant they belong to"
        )
    return bound


def _recipients(entry: dict[str, Any], key: str, where: str) -> list[age.AnyRecipient]:
    value = entry.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{where} {key} must be a list of age recipients")
    return parse_recipients(value, f"{where} {key}")


def tenants_example() -> str:
    """The template's commented [[tenants]] example."""
    return (
        "# Tenants: data controllers (regions, say) each holding the only keys to its own callers'\n"
        "# recordings. With any [[tenants]], [recording] recipients stays empty and every route names\n"
        "# its tenant (or [recording] tenant names the default). escrow: also encrypted to these\n"
        "# (e.g. a national data protection officer); off unless listed.\n"
        "# [[tenants]]\n"
        '# name = "north"\n'
        '# recipients = ["age1..."]\n'
        "# escrow = []\n"
        "# retention_days = 90      # its routes' default ([recording] retention_days)\n"
    )
