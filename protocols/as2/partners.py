"""Who is on the other end: AS2 names -> a connection's profile, and the flow's interface code.

An inbound message names its sender (AS2-From) and its recipient (AS2-To). The pair picks one
connection, and only that connection's partner certificates may have signed it: a certificate
of another connection is refused exactly like an unknown one. A pair claimed by two connections
is ambiguous and refused for both (a configuration error, reported at start).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from protocols.as2.errors import As2Error, Modifier
from protocols.as2.params import As2ReceiveParams, MdnParams

__all__ = ["PartnerProfile", "Partners", "interface_code_of"]

_NAMED_FLOW = re.compile(r"(?P<code>[A-Z]{3}\d{4}[A-Z])_[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PartnerProfile:
    """Everything the endpoint needs about one connection, and nothing of the gateway."""

    connection: str
    receive: As2ReceiveParams  # AIFE -> us: names, partner certificates, our keys, caps
    mdn: MdnParams  # how we sign the receipts we send back
    max_body_size: int
    receipt_hosts: frozenset[str] = frozenset()  # where an async MDN may be POSTed
    mdn_retries: int = 5
    mdn_retry_delay: float = 10.0
    signed_mdn_required: bool = True  # for the receipts AIFE sends us

    @property
    def partner_name(self) -> str:
        return self.receive.as2_from

    @property
    def our_name(self) -> str:
        return self.receive.as2_to


class Partners:
    """Lookup of profiles by (AS2-From, AS2-To); case-sensitive as RFC 4130 §6.2 says."""

    def __init__(self, profiles: Iterable[PartnerProfile]) -> None:
        table: dict[tuple[str, str], PartnerProfile] = {}
        ambiguous: dict[tuple[str, str], list[str]] = {}
        for profile in profiles:
            key = (profile.partner_name, profile.our_name)
            if key in ambiguous:
                ambiguous[key].append(profile.connection)
            elif key in table:
                ambiguous[key] = [table.pop(key).connection, profile.connection]
            else:
                table[key] = profile
        self._table = table
        self._ambiguous = {key: tuple(names) for key, names in ambiguous.items()}

    @property
    def ambiguous(self) -> Mapping[tuple[str, str], tuple[str, ...]]:
        """AS2 name pairs several connections claim (refused until the config is fixed)."""
        return self._ambiguous

    def __iter__(self) -> Iterator[PartnerProfile]:
        return iter(self._table.values())

    def __len__(self) -> int:
        return len(self._table)

    def find(self, as2_from: str, as2_to: str) -> PartnerProfile:
        """The one connection these names designate, or `unknown-trading-partner`."""
        profile = self._table.get((as2_from, as2_to))
        if profile is not None:
            return profile
        if (as2_from, as2_to) in self._ambiguous:
            reason = f"{as2_from!r} -> {as2_to!r} is claimed by several connections"
        else:
            reason = f"no connection trades as {as2_to!r} with {as2_from!r}"
        raise As2Error(Modifier.UNKNOWN_TRADING_PARTNER, reason)

    def by_connection(self, name: str) -> PartnerProfile | None:
        return next((p for p in self._table.values() if p.connection == name), None)


def interface_code_of(file_name: str | None, subject: str | None) -> tuple[str, str | None]:
    """The interface code from `<code>_<id>.<ext>` (domain.md §7), and the file name to keep.

    The file name wins over the Subject. A file name that is not a bare `<code>_<id>.<ext>`
    name is refused rather than guessed at: it travels on into the store and the back office.
    """
    if file_name is not None:
        found = _NAMED_FLOW.fullmatch(file_name)
        if found is None:
            raise As2Error(
                Modifier.UNEXPECTED_PROCESSING_ERROR,
                f"file name {file_name[:120]!r} is not <interface code>_<id>.<ext>",
            )
        return found["code"], file_name
    candidate = (subject or "").strip()
    found = _NAMED_FLOW.fullmatch(candidate)
    if found is None:
        raise As2Error(
            Modifier.UNEXPECTED_PROCESSING_ERROR,
            "no interface code: neither a file name nor a Subject of the form "
            "<interface code>_<id>.<ext>",
        )
    return found["code"], candidate
