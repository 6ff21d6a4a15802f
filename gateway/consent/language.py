"""Which language the caller hears the notice in, pure: how it was chosen, and the language a
trunk's header names (an Accept-Language list, or a bare tag such as a carrier's "sv-SE")."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable


class LanguageChoice(enum.StrEnum):
    FIXED = "route"  # the route's language
    HEADER = "header"  # named by the trunk in the route's language_header
    MENU = "menu"  # the caller pressed a menu key
    MENU_TIMEOUT = "menu-timeout"  # the menu went unanswered: its default
    PENDING = "menu-unanswered"  # the call ended during the menu


_ITEM = re.compile(
    r"^\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([01](?:\.[0-9]{0,3})?))?\s*$"
)
MAX_ITEMS = 16


def language_from_header(value: str, offered: Iterable[str]) -> str | None:
    """The offered language the header value prefers most (by q, then by order), matched on
    the primary subtag ("sv-SE" is "sv"); None when it names none of them or is malformed.
    Attacker-controlled: bounded, and anything odd is ignored rather than guessed at."""
    offered = list(offered)
    best: tuple[float, int, str] | None = None
    for i, item in enumerate(value[:512].split(",")[:MAX_ITEMS]):
        m = _ITEM.fullmatch(item)
        if m is None:
            continue
        lang, q = m.group(1).lower(), float(m.group(2)) if m.group(2) else 1.0
        if lang in offered and q > 0 and (best is None or (q, -i) > (best[0], best[1])):
            best = (q, -i, lang)
    return best[2] if best else None
