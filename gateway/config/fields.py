"""One declaration per setting. A section of the configuration is a dataclass whose fields are
made by `setting(...)`: its TOML default, the comment `gateway init` writes above it, and how
the TOML value becomes the Python one. The loader (types, unknown keys), the Python defaults and
the commented template are all derived from that one declaration."""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError

Parse = Callable[[Any, str], Any]  # (TOML value, "[section] key") -> Python value, or ConfigError
NUMBER = (int, float)


def _types_of(value: Any) -> tuple[type, ...]:
    if isinstance(value, bool):
        return (bool,)
    if isinstance(value, float):
        return NUMBER
    return (type(value),)


def setting(
    toml: Any,
    doc: str,
    parse: Parse | None = None,
    *,
    types: tuple[type, ...] | None = None,
    path: bool = False,
) -> Any:
    """A dataclass field for one setting.

    `toml`: its default as written in the file. `doc`: the comment above it in the template
    ("" when the comment above the previous key covers it too). `parse`: TOML value to Python
    value (also applied to the default, which gives the field's Python default). `path`: a
    file or directory, resolved against the data directory when the file is loaded.
    """
    meta = {"toml": toml, "doc": doc, "parse": parse, "types": types or _types_of(toml), "path": path}
    default = parse(toml, "") if parse is not None else toml
    if path:
        default = Path(default) if default else None
    if isinstance(default, (list, dict, set)):
        factory: Callable[[], Any] = functools.partial(copy.copy, default)
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def as_float(value: Any, where: str) -> float:
    return float(value)


@dataclass
class Section:
    """A [section] of the configuration file."""

    NAME: ClassVar[str] = ""
    DOC: ClassVar[str] = ""  # the comment under [name] in the template; "" for none

    def check(self) -> None:
        """Refuse values this section cannot work with (each section's own rules)."""

    @classmethod
    def settings(cls) -> list[Field[Any]]:
        return [f for f in fields(cls) if "toml" in f.metadata]

    @classmethod
    def load(cls, raw: dict[str, Any], base: Path) -> Any:
        values = raw.get(cls.NAME, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[{cls.NAME}] must be a table")
        known = {f.name: f for f in cls.settings()}
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown setting [{cls.NAME}] {key}{suggest(key, list(known))}")
        out: dict[str, Any] = {}
        for name, f in known.items():
            where = f"[{cls.NAME}] {name}"
            value = values.get(name, f.metadata["toml"])
            types = f.metadata["types"]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ConfigError(f"{where} must be {' or '.join(t.__name__ for t in types)}, got {value!r}")
            parse = f.metadata["parse"]
            if parse is not None:
                value = parse(value, where)
            if f.metadata["path"]:
                value = (Path(value) if Path(value).is_absolute() else base / value) if value else None
            out[name] = value
        section = cls(**out)
        section.check()
        return section


def suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        if not value:
            return "[]"
        if len(value) > 1 or len(toml_value(value[0])) > 60:
            return "[\n" + "".join(f"    {toml_value(v)},\n" for v in value) + "]"
        return f"[{toml_value(value[0])}]"
    raise TypeError(f"cannot write {value!r} as TOML")


def render_section(cls: type[Section], overrides: dict[str, Any]) -> str:
    """`[name]`, its comment, and every setting with its comment: a default, or the override."""
    lines = [f"[{cls.NAME}]"]
    lines += [f"# {line}" if line else "#" for line in cls.DOC.splitlines()] if cls.DOC else []
    for f in cls.settings():
        lines += [f"# {line}" for line in f.metadata["doc"].splitlines()] if f.metadata["doc"] else []
        value = overrides.get(f.name, f.metadata["toml"])
        lines.append(f"{f.name} = {toml_value(value)}")
    return "\n".join(lines) + "\n"
