"""What the CLI prints of text it did not write itself (audit actors and subjects, hold reasons):
control characters shown as escapes, so that a name someone typed into a login form cannot move
the cursor, rewrite earlier lines or change the terminal's title when an operator reads the log."""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    """`text` with every control, format (bidirectional overrides among them) and line-separator
    character replaced by its Python escape; anything else unchanged."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    if unicodedata.category(c) == "Zs":  # no-break and other spaces print as themselves
        return c
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
