"""SignerInfo (RFC 5652 §5.3) and its signed attributes, read with der.py.

Verification looks at a handful of fields; asn1crypto built an object tree for all of them at
ten times the cost of the RSA check itself. Here the fields are read straight off the DER
(nothing big is copied) and only odd, rare values (RSASSA-PSS parameters, signing times) are
handed to asn1crypto. Malformed input raises `DerError` (a ValueError): the caller reports it
as `authentication-failed`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

from asn1crypto import algos as asn1_algos
from asn1crypto import core as asn1_core

from protocols.as2 import der
from protocols.as2.cms import Identifier, read_identifier
from protocols.as2.der import CONTEXT, OCTET_STRING, SEQUENCE, SET, UNIVERSAL, DerError, Tlv

__all__ = [
    "SignerInfo",
    "attributes",
    "octets_of",
    "read_signer_infos",
    "signed_bytes",
    "time_of",
]

_UTC_TIME = 23
_GENERALIZED_TIME = 24
_UTC_DER = re.compile(rb"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z")


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """The fields of one SignerInfo that verification needs."""

    sid: Identifier
    digest_oid: str
    signed_attrs: Tlv | None  # [0] IMPLICIT SET OF Attribute, when present
    signature_oid: str
    signature_params: Tlv | None
    signature: bytes

    def pss_parameters(self) -> asn1_algos.RSASSAPSSParams | None:
        """RSASSA-PSS-params (rare: asn1crypto reads them and supplies the defaults)."""
        if self.signature_params is None:
            return None
        return asn1_algos.RSASSAPSSParams.load(bytes(self.signature_params.raw))


def signed_bytes(attrs: Tlv) -> bytes:
    """The signed attributes as they were signed: a DER SET OF (tag 0x31, not [0])."""
    body = attrs.body
    return der.header(0x31, len(body)) + bytes(body)


def attributes(attrs: Tlv) -> dict[str, list[list[Tlv]]]:
    """Each attribute type's value sets, in order of appearance."""
    found: dict[str, list[list[Tlv]]] = {}
    for attribute in attrs.children():
        parts = attribute.expect(UNIVERSAL, SEQUENCE, "Attribute").child_list("Attribute")
        if len(parts) != 2:
            raise DerError("Attribute: type and values expected")
        values = parts[1].expect(UNIVERSAL, SET, "AttributeValues").child_list("values")
        found.setdefault(parts[0].as_oid(), []).append(values)
    return found


def read_signer_infos(node: Tlv) -> Iterator[SignerInfo]:
    """The SignerInfos SET, each read only when the caller gets to it."""
    for child in node.expect(UNIVERSAL, SET, "SignerInfos").children():
        yield read_signer_info(child)


def read_signer_info(node: Tlv) -> SignerInfo:
    fields = node.expect(UNIVERSAL, SEQUENCE, "SignerInfo").child_list("SignerInfo", minimum=5)
    fields[0].as_int()  # version: an INTEGER, its value implied by the sid's kind
    sid = read_identifier(fields[1])
    digest_oid, _ = _algorithm(fields[2], "digestAlgorithm")
    rest = fields[3:]
    attrs = None
    if rest[0].is_(CONTEXT, 0):
        attrs, rest = rest[0], rest[1:]
    if len(rest) < 2:
        raise DerError("SignerInfo lacks its signature")
    signature_oid, params = _algorithm(rest[0], "signatureAlgorithm")
    signature = b"".join(rest[1].expect(UNIVERSAL, OCTET_STRING, "signature").octets())
    if len(rest) > 3 or (len(rest) == 3 and not rest[2].is_(CONTEXT, 1)):
        raise DerError("SignerInfo: unexpected fields after the signature")
    return SignerInfo(sid, digest_oid, attrs, signature_oid, params, signature)


def _algorithm(node: Tlv, what: str) -> tuple[str, Tlv | None]:
    """AlgorithmIdentifier: its OID and its parameters node (None when absent)."""
    fields = node.expect(UNIVERSAL, SEQUENCE, what).child_list(what, minimum=1)
    if len(fields) > 2:
        raise DerError(f"{what}: too many elements")
    return fields[0].as_oid(), fields[1] if len(fields) > 1 else None


def octets_of(value: Tlv) -> bytes:
    """An OCTET STRING attribute value (message-digest)."""
    return b"".join(value.expect(UNIVERSAL, OCTET_STRING, "attribute value").octets())


def time_of(value: Tlv) -> dt.datetime:
    """A Time attribute value (signing-time) as asn1crypto reads it: a datetime.

    DER's UTCTime (`YYMMDDHHMMSSZ`, what every signer writes) is read here; any other form
    goes to asn1crypto.
    """
    raw = bytes(value.raw)
    der_form = _UTC_DER.fullmatch(bytes(value.body)) if value.is_(UNIVERSAL, _UTC_TIME) else None
    if der_form is not None and not value.constructed:
        year, month, day, hour, minute, second = map(int, der_form.groups())
        year += 2000 if year < 50 else 1900  # RFC 5280 §4.1.2.5.1, as asn1crypto reads it
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    when: dt.datetime
    if value.is_(UNIVERSAL, _UTC_TIME):
        when = asn1_core.UTCTime.load(raw).native
    elif value.is_(UNIVERSAL, _GENERALIZED_TIME):
        when = asn1_core.GeneralizedTime.load(raw).native
    else:
        raise DerError(f"signing time: unexpected tag [{value.tag_class}:{value.number}]")
    return when
