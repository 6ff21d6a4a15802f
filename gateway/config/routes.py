"""[[routes]]: what happens to a call by the number dialled. Every route setting is declared
once, as a field of `Route` made by `route_setting(...)`: the TOML key, which section's setting
gives its default, how its value is checked, and the example line `gateway init` writes. The
loader, the default route and the template's commented example all come from that declaration,
so a new route setting is one edit here (and its line in README.md's table, which the tests
check)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..sip.dtmf import DtmfMethod
from .fields import NUMBER, suggest, toml_value
from .values import (
    MODES,
    check_sip_uri,
    parse_beep,
    parse_dtmf,
    parse_header_name,
    parse_language,
    parse_languages,
)

Parse = Callable[[Any, str], Any]


def _mode(value: Any, where: str) -> str:
    if value not in MODES:
        raise ConfigError(f"{where} must be one of {', '.join(MODES)}, got {value!r}")
    return str(value)


def route_setting(
    default: str,
    parse: Parse | None,
    types: tuple[type, ...],
    example: Any,
    *,
    key: str = "",
    note: str = "",
    path: bool = False,
) -> Any:
    """A field of Route. `default`: "section.attribute", the setting that gives its value in
    the default route and in a route that does not set it. `key`: its TOML key, when it is not
    the field's name. `example` and `note`: the template's commented example line. `path`: a
    file or directory, resolved against the data directory."""
    return field(
        metadata={
            "default": default,
            "parse": parse,
            "types": types,
            "example": example,
            "key": key,
            "note": note,
            "path": path,
        }
    )


@dataclass
class Route:
    """What happens to a call by the number dialled; number "*" is the default route."""

    number: str  # the dialled number, or "*"
    mode: str = route_setting("consent.mode", _mode, (str,), "opt-out")
    language: str = route_setting("consent.language", parse_language, (str,), "en")
    pbx: str = route_setting("pbx.uri", check_sip_uri, (str,), "sip:nurses@10.0.0.5:5060")
    retention_days: int = route_setting("recording.retention_days", None, (int,), 90)
    prompts_dir: Path = route_setting("prompts.default_dir", None, (str,), "", key="prompts", path=True)
    dtmf: DtmfMethod = route_setting(
        "calls.dtmf", parse_dtmf, (str,), "auto", note='or "rfc4733", "info", "inband" ([calls] dtmf)'
    )
    # A language menu offering these, in this order (empty: none).
    languages: tuple[str, ...] = route_setting(
        "consent.languages",
        parse_languages,
        (list,),
        [],
        note='a language menu, e.g. ["sv", "en", "fi"] ([consent] languages)',
    )
    # A SIP header naming the caller's language ("": not asked).
    language_header: str = route_setting(
        "consent.language_header",
        parse_header_name,
        (str,),
        "",
        note='e.g. "Accept-Language" ([consent] language_header)',
    )
    # Tell the helpline, before bridging, whether the call is recorded.
    whisper: bool = route_setting(
        "pbx.whisper",
        None,
        (bool,),
        False,
        note="tell the helpline whether the call is recorded ([pbx] whisper)",
    )
    helpline_language: str = route_setting("pbx.language", parse_language, (str,), "en")  # the whisper's
    # A short beep into both legs this often while recording (0: never).
    beep_interval_s: float = route_setting(
        "calls.beep_interval_s", parse_beep, NUMBER, 0, note="([calls] beep_interval_s)"
    )
    # With [[tenants]]: whose keys its calls are recorded to (config/tenants.py).
    tenant: str = route_setting(
        "recording.tenant", None, (str,), "north", note="a [[tenants]] name ([recording] tenant)"
    )

    def check(self, where: str) -> None:
        """Rules between a route's settings."""
        if self.languages and self.language not in self.languages:
            raise ConfigError(
                f"{where} language {self.language!r} is the menu's default, so it must be one of "
                f"languages {self.languages}"
            )


def route_settings() -> list[Field[Any]]:
    """Route's settings, in the order the template lists them (number first)."""
    return [f for f in fields(Route) if f.name != "number"]


def key_of(f: Field[Any]) -> str:
    return str(f.metadata["key"] or f.name)


ROUTE_KEYS = ["number"] + [key_of(f) for f in route_settings()]


def default_route(sections: dict[str, Any]) -> Route:
    """Route "*" from the sections' settings (`sections`: the loaded sections by TOML name)."""
    values: dict[str, Any] = {}
    for f in route_settings():
        section, attr = f.metadata["default"].split(".")
        value = getattr(sections[section], attr)
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return Route("*", **values)


def load_routes(raw_routes: Any, default: Route, base: Path) -> list[Route]:
    """The [[routes]] tables, each key defaulting to `default`; without any, `default` alone."""
    if raw_routes is None:
        return [default]
    if not isinstance(raw_routes, list) or not all(isinstance(x, dict) for x in raw_routes):
        raise ConfigError("[[routes]] must be an array of tables")
    by_key = {key_of(f): f for f in route_settings()}
    routes = []
    for i, entry in enumerate(raw_routes):
        where = f"[[routes]] #{i + 1}"
        for key, value in entry.items():
            if key not in ROUTE_KEYS:
                raise ConfigError(f"unknown setting {key!r} in {where}{suggest(key, ROUTE_KEYS)}")
            types = (str,) if key == "number" else by_key[key].metadata["types"]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ConfigError(f"{where} {key} has the wrong type: {value!r}")
        number = entry.get("number")
        if not number:
            raise ConfigError(f'{where} needs a number (the dialled number, or "*" for the default route)')
        values: dict[str, Any] = {}
        for key, f in by_key.items():
            if key not in entry:
                values[f.name] = getattr(default, f.name)
                continue
            value = entry[key]
            if f.metadata["path"]:
                value = default.prompts_dir if not value else Path(value)
                value = value if value.is_absolute() else base / value
            elif f.metadata["parse"] is not None:
                value = f.metadata["parse"](value, f"{where} {key}")
            values[f.name] = value
        route = Route(number, **values)
        route.check(where)
        routes.append(route)
    numbers = [r.number for r in routes]
    if len(set(numbers)) != len(numbers):
        raise ConfigError("[[routes]] lists a number twice")
    return routes


def routes_example() -> str:
    """The template's commented [[routes]] example, one line per setting."""
    lines = [
        "# Routes by dialled number. Without any [[routes]], every number uses [consent] mode and",
        '# [pbx] uri. A call to a number with no route and no "*" route is refused with 404.',
        "# [[routes]]",
        '# number = "1177"',
    ]
    for f in route_settings():
        line = f"# {key_of(f)} = {toml_value(f.metadata['example'])}"
        if f.metadata["note"]:
            line = f"{line:<24} # {f.metadata['note']}"
        lines.append(line)
    return "\n".join(lines) + "\n"
