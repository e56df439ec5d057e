"""SignerInfo read with our DER reader: hostile shapes are refused with the modifier of the step.

Each test edits one field of a valid signature at the DER level and checks that verification
fails with `authentication-failed` and says why; valid but unusual shapes are accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from protocols.as2 import der
from protocols.as2.algorithms import OID
from protocols.as2.cms import content_info, read_content_info
from protocols.as2.cms_sign import sign_detached
from protocols.as2.cms_verify import verify_detached
from protocols.as2.errors import As2Error, Modifier
from tests.as2.as2_helpers import Pki

CONTENT = b"Content-Type: application/xml\r\n\r\n<Invoice/>\n"
Edit = Callable[[list[bytes]], list[bytes]]


def _resigned(pki: Pki, edit: Edit, *, now: dt.datetime, use_ski: bool = False) -> bytes:
    """A valid detached signature whose SignerInfo fields went through `edit`."""
    signed = sign_detached(CONTENT, identity=pki.aife.signing(), now=now, use_ski=use_ski)
    _, inner = read_content_info(signed)
    fields = [bytes(field.raw) for field in inner.children()]
    signer = next(der.read_single(fields[-1], "SignerInfos").children())
    edited = edit([bytes(field.raw) for field in signer.children()])
    signer_infos = der.encode(0x31, der.encode(0x30, *edited))
    return b"".join(content_info(OID.SIGNED_DATA, [der.encode(0x30, *fields[:-1], signer_infos)]))


def _refused(pki: Pki, signature: bytes) -> As2Error:
    with pytest.raises(As2Error) as caught:
        verify_detached(signature, CONTENT, trusted=[pki.aife.cert])
    assert caught.value.modifier is Modifier.AUTHENTICATION_FAILED
    return caught.value


def _children(raw: bytes) -> list[bytes]:
    return [bytes(node.raw) for node in der.read_single(raw, "node").children()]


def _third_attribute_field(fields: list[bytes]) -> list[bytes]:
    attrs = _children(fields[3])
    attrs[0] = der.encode(0x30, *_children(attrs[0]), der.encode_integer(1))
    return [*fields[:3], der.encode(0xA0, *attrs), *fields[4:]]


def _third_algorithm_field(fields: list[bytes]) -> list[bytes]:
    return [*fields[:2], der.encode(0x30, *_children(fields[2]), b"\x05\x00"), *fields[3:]]


def _third_sid_field(fields: list[bytes]) -> list[bytes]:
    return [fields[0], der.encode(0x30, *_children(fields[1]), b"\x05\x00"), *fields[2:]]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda fields: fields[:-1], "lacks its signature"),
        (lambda fields: [*fields, der.encode(0x30, b"")], "unexpected fields after"),
        (lambda fields: [*fields, der.encode(0xA1, b""), b"\x05\x00"], "unexpected fields after"),
        (_third_attribute_field, "type and values expected"),
        (_third_algorithm_field, "too many elements"),
        (_third_sid_field, "2 elements expected"),
        (lambda fields: [fields[0], b"\x81\x01\x00", *fields[2:]], "identifier: unexpected tag"),
    ],
    ids=[
        "no-signature",
        "trailing-field",
        "after-unsigned-attrs",
        "attribute-of-three",
        "algorithm-of-three",
        "sid-of-three",
        "sid-tag",
    ],
)
def test_misshapen_signer_infos_are_malformed(
    pki: Pki, now: dt.datetime, edit: Edit, reason: str
) -> None:
    error = _refused(pki, _resigned(pki, edit, now=now))
    assert "malformed SignerInfo" in error.reason
    assert reason in error.reason


def test_unsigned_attributes_are_allowed(pki: Pki, now: dt.datetime) -> None:
    """[1] unsignedAttrs (counter-signatures, timestamps) may follow the signature."""
    signature = _resigned(pki, lambda fields: [*fields, der.encode(0xA1, b"")], now=now)
    assert verify_detached(signature, CONTENT, trusted=[pki.aife.cert]).certificate == pki.aife.cert


def test_a_stranger_named_by_key_identifier_is_described_so(pki: Pki, now: dt.datetime) -> None:
    signature = sign_detached(CONTENT, identity=pki.other.signing(), now=now, use_ski=True)
    error = _refused(pki, signature)
    ski = pki.other.signing().ref.ski.hex()
    assert error.reason == f"signer not among the expected certificates: subject key id {ski}"
