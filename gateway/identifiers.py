"""Checks for the identifiers a connection sheet carries: SIRET, e-mail, international phone."""

from __future__ import annotations

import re

_SIRET = re.compile(r"^\d{14}$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_PHONE_SEPARATORS = re.compile(r"[ .\-()]")
# La Poste's establishments share SIREN 356000000: their SIRETs pass Luhn (the head office)
# or a digit sum that is a multiple of 5 (every other establishment).
_LA_POSTE_SIREN = "356000000"


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by SIREN and SIRET numbers."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def siret_problem(value: str) -> str | None:
    """Why `value` is not a valid SIRET, or None when it is."""
    if not _SIRET.fullmatch(value):
        return f"SIRET {value!r} must be exactly 14 digits"
    if value.startswith(_LA_POSTE_SIREN):
        if luhn_valid(value) or sum(int(c) for c in value) % 5 == 0:
            return None
        return f"SIRET {value} fails La Poste's digit-sum check"
    if not luhn_valid(value):
        return f"SIRET {value} fails its check digit"
    if not luhn_valid(value[:9]):
        return f"SIRET {value} carries a SIREN ({value[:9]}) that fails its check digit"
    return None


def email_problem(value: str) -> str | None:
    """Why `value` is not a usable e-mail address, or None."""
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        return f"{value!r} is not an e-mail address"
    return None


def normalise_phone(value: str) -> str:
    """Strip the usual separators: '+33 1 23 45 67 89' -> '+33123456789'."""
    return _PHONE_SEPARATORS.sub("", value)


def phone_problem(value: str) -> str | None:
    """Why `value` is not an international (E.164) phone number, or None."""
    if not _PHONE.fullmatch(normalise_phone(value)):
        return f"{value!r} is not an international phone number (+<country><number>)"
    return None
