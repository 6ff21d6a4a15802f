"""Personal data in the index: caller numbers (and legacy file paths) stored so that nobody
without an operator identity can read them, or even test a guess against them.

A value is age-encrypted to the recording recipients and nothing else is kept: no hash, keyed
or not. A stolen database, disk or backup therefore gives no way to enumerate a country's
number space. Finding a data subject's calls takes the operator's identity: `subject find`
decrypts every stored number (in parallel) and compares them in E.164 form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Protocol

from .. import age
from .index import Index

_NUMBER_NOISE = re.compile(r"[\s\-().\u00a0/]")
_DIGITS = re.compile(r"\+?[0-9]{2,20}")


class NumberError(ValueError):
    """A number that cannot be searched for unambiguously; the message says why."""


class Numbering(Protocol):
    """How national numbers map to E.164: the [numbers] section (config.NumbersConfig)."""

    country_code: str  # e.g. "46"; empty: national numbers cannot be placed
    national_prefix: str  # trunk prefix of a national number (0701234567)
    international_prefix: str  # dialled before a country code (0046701234567)


def strip_number(number: str) -> str:
    """Spacing and punctuation removed, so that '+46 8-123 456' and '+468123456' match."""
    text = number.strip()
    for scheme in ("tel:", "sip:", "sips:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :].split("@", 1)[0].split(";", 1)[0]
    return _NUMBER_NOISE.sub("", text)


def e164(number: str, numbering: Numbering) -> str | None:
    """`number` in E.164 form (+CC...), or None when it cannot be placed: no country code is
    configured for a national number, or it is not a number at all ("anonymous")."""
    n = strip_number(number)
    if not _DIGITS.fullmatch(n):
        return None
    if n.startswith("+"):
        return n
    if numbering.international_prefix and n.startswith(numbering.international_prefix):
        return "+" + n[len(numbering.international_prefix) :]
    if numbering.country_code and numbering.national_prefix and n.startswith(numbering.national_prefix):
        return "+" + numbering.country_code + n[len(numbering.national_prefix) :]
    return None


def search_form(number: str, numbering: Numbering) -> str:
    """The E.164 form a data-subject request searches for, or NumberError saying why there is
    none. A national number without a configured country code is refused, never guessed:
    a wrong "no data" answer to a data subject is a compliance failure."""
    n = strip_number(number)
    if not _DIGITS.fullmatch(n):
        raise NumberError(f"{number!r} is not a telephone number")
    form = e164(n, numbering)
    if form is None:
        if numbering.country_code:
            raise NumberError(
                f"{number!r} is neither international (+{numbering.country_code}..., "
                f"{numbering.international_prefix}{numbering.country_code}...) nor national "
                f"({numbering.national_prefix}...): give it in international form"
            )
        raise NumberError(
            f"{number!r} is not in international form: give it as +CC... (e.g. +46701234567), "
            "or set [numbers] country_code so that national numbers can be placed"
        )
    return form


def same_number(stored: str, target_e164: str, numbering: Numbering) -> bool:
    """Does a stored caller number (as the trunk sent it) denote `target_e164`?"""
    form = e164(stored, numbering)
    if form is not None:
        return form == target_e164
    # A number the trunk sent without any prefix ("46701234567" or a national number without
    # its trunk prefix): compare the digits as they are with the target's.
    return strip_number(stored).lstrip("+") == target_e164.lstrip("+")


def seal_value(value: str, recipients: Sequence[age.AnyRecipient]) -> bytes | None:
    """The value encrypted to `recipients`; None when there is no recipient (nothing is kept)."""
    if not recipients:
        return None
    return age.encrypt(value.encode("utf-8"), recipients)


def open_value(sealed: bytes, identities: Sequence[age.AnyIdentity]) -> str | None:
    """A sealed value, decrypted; None if these identities do not open it."""
    try:
        return age.decrypt(sealed, identities).decode("utf-8", errors="replace")
    except age.NoIdentityMatchError:
        return None


def seal_parties(parties: list[dict[str, object]], recipients: Sequence[age.AnyRecipient]) -> bytes | None:
    """A recording session's participants (each with its "number", "aor", "name", "role" and
    "labels"), sealed as one JSON list."""
    return seal_value(json.dumps(parties, sort_keys=True), recipients)


def opened_numbers(opened: str) -> list[str]:
    """The numbers in an opened value: a caller's number is itself; sealed participants (a JSON
    list, see seal_parties) give each participant's number."""
    if not opened.startswith("["):
        return [opened]
    try:
        parties = json.loads(opened)
    except ValueError:
        return []
    return [str(p["number"]) for p in parties if isinstance(p, dict) and p.get("number")]


def reseal_all(
    index: Index,
    identities: Sequence[age.AnyIdentity],
    recipients_for: Callable[[str | None], Sequence[age.AnyRecipient] | None],
) -> tuple[int, int]:
    """Every sealed caller number and participant list that `identities` open, encrypted anew to
    its call's tenant's recipients, `recipients_for(call.tenant)` (None or empty: left as it is)
    (what `gateway recordings rewrap` does for the numbers). (resealed calls, calls passed
    over: another key's, or resealed already, or of no configured tenant)."""
    resealed = passed = 0
    after = ""
    while page := index.encrypted_callers(after, 1000):  # a thousand at a time, whatever the total
        after = page[-1][0]
        for call in index.calls_by_ids(list(dict.fromkeys(c for c, _ in page))):
            recipients = recipients_for(call.tenant)
            if not recipients:
                passed += 1
                continue
            values = []
            for sealed in (call.caller_enc, call.parties_enc):
                try:
                    values.append(
                        None if sealed is None else age.encrypt(age.decrypt(sealed, identities), recipients)
                    )
                except age.NoIdentityMatchError:
                    values.append(sealed)
            if values == [call.caller_enc, call.parties_enc]:
                passed += 1
                continue
            index.reseal_call(call.id, values[0], values[1])
            resealed += 1
    return resealed, passed
