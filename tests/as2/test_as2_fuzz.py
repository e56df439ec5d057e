"""Fuzzing the MIME/CMS parsers: whatever arrives, only typed errors, never a crash or a hang.

Valid messages (ours and OpenSSL's) are mutated a few bytes at a time so most of the structure
survives and the mutation reaches deep parsing code; mutations are also applied *under* the
encryption layer. 10,000 cases in the slow tier, a quick sample otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.as2 import der
from protocols.as2.cms import content_type_of
from protocols.as2.cms_envelope import encrypt
from protocols.as2.errors import As2Error
from protocols.as2.mdn import Disposition, build_mdn, parse_mdn
from protocols.as2.message import build_message, parse_message
from protocols.as2.mime import parse_entity
from protocols.as2.multipart import split_multipart
from protocols.as2.params import As2ReceiveParams, MdnParams
from tests.as2.as2_helpers import (
    AIFE,
    PA,
    Pki,
    aife_receives,
    openssl,
    payload_entity,
    send,
    split_smime,
)
from tests.pki import now

Mutation = tuple[str, int, int]
HANG_LIMIT = 5.0  # seconds; a linear parser needs milliseconds for these sizes


@dataclasses.dataclass(frozen=True)
class Seed:
    headers: dict[str, str]
    body: bytes
    params: As2ReceiveParams
    inner: bytes | None = None  # plaintext to mutate and re-encrypt


@pytest.fixture(scope="module")
def seeds(pki: Pki) -> list[Seed]:
    stamp = now()
    lenient = aife_receives(pki, require_signature=False, require_encryption=False)
    built: list[Seed] = []
    for overrides in (
        {},
        {"encryption_certificate": None},
        {"encryption_certificate": None, "compress_before_sign": True},
        {"encryption_certificate": None, "signing": None},
        {"encryption_certificate": None, "signing": None, "compress": False},
    ):
        message = build_message(b"<a>\n</a>\r\n", params=send(pki, **overrides), now=stamp)
        built.append(Seed(message.headers, message.body, lenient))
    signed_only = build_message(b"<x/>\n", params=send(pki, encryption_certificate=None), now=stamp)
    inner_head = f"Content-Type: {signed_only.headers['Content-Type']}\r\n\r\n".encode()
    enveloped = {
        **signed_only.headers,
        "Content-Type": "application/pkcs7-mime; smime-type=enveloped-data",
    }
    built.append(Seed(enveloped, b"", aife_receives(pki), inner_head + signed_only.body))
    smime = openssl(
        "cms", "-sign", "-binary", "-nodetach", "-signer", pki.pa.cert_path,
        "-inkey", pki.pa.key_path, stdin=payload_entity(b"<y>\n</y>"),
    )  # fmt: skip
    headers, body = split_smime(smime)
    built.append(Seed({**signed_only.headers, **headers}, body, lenient))
    return built


def _mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    buffer = bytearray(data)
    for kind, position, value in mutations:
        at = position % (len(buffer) + 1)
        if kind == "flip" and at < len(buffer):
            buffer[at] ^= 1 << (value % 8)
        elif kind == "set" and at < len(buffer):
            buffer[at] = value
        elif kind == "insert":
            buffer[at:at] = bytes([value]) * (1 + value % 3)
        elif kind == "delete":
            del buffer[at : at + 1 + value % 4]
        elif kind == "truncate":
            del buffer[at:]
    return bytes(buffer)


mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
        st.integers(min_value=0, max_value=1 << 20),
        st.integers(min_value=0, max_value=255),
    ),
    min_size=1,
    max_size=3,
)


def _only_typed_errors(call: Callable[[], Any]) -> None:
    started = time.monotonic()
    with contextlib.suppress(As2Error):
        call()
    assert time.monotonic() - started < HANG_LIMIT


def _fuzz_message(
    pki: Pki, seeds: list[Seed], index: int, changes: list[Mutation], header: bool
) -> None:
    seed = seeds[index % len(seeds)]
    headers = dict(seed.headers)
    body = seed.body
    if seed.inner is not None:
        body = encrypt(_mutate(seed.inner, changes), recipients=[pki.aife.cert])
    elif header:
        value = headers["Content-Type"].encode()
        headers["Content-Type"] = _mutate(value, changes).decode("latin-1")
    else:
        body = _mutate(body, changes)
    _only_typed_errors(lambda: parse_message(headers, body, params=seed.params))


FUZZ_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@settings(max_examples=300, **FUZZ_SETTINGS)
@given(index=st.integers(0, 50), changes=mutations, header=st.booleans())
def test_fuzz_messages_quick(
    pki: Pki, seeds: list[Seed], index: int, changes: list[Mutation], header: bool
) -> None:
    _fuzz_message(pki, seeds, index, changes, header)


@pytest.mark.slow
@settings(max_examples=6000, **FUZZ_SETTINGS)
@given(index=st.integers(0, 50), changes=mutations, header=st.booleans())
def test_fuzz_messages(
    pki: Pki, seeds: list[Seed], index: int, changes: list[Mutation], header: bool
) -> None:
    _fuzz_message(pki, seeds, index, changes, header)


@pytest.fixture(scope="module")
def signed_mdn(pki: Pki) -> tuple[dict[str, str], bytes]:
    from protocols.as2.mdn import MdnRequest, parse_disposition_options

    request = MdnRequest(
        "x", None, parse_disposition_options("signed-receipt-protocol=optional, pkcs7-signature")
    )
    built = build_mdn(
        original_message_id="<m@pa>",
        disposition=Disposition(),
        mic=None,
        request=request,
        params=MdnParams(as2_from=AIFE, as2_to=PA, signing=pki.aife.signing()),
        now=now(),
    )
    return built.headers, built.body


@pytest.mark.slow
@settings(max_examples=2000, **FUZZ_SETTINGS)
@given(changes=mutations, header=st.booleans())
def test_fuzz_mdns(
    pki: Pki, signed_mdn: tuple[dict[str, str], bytes], changes: list[Mutation], header: bool
) -> None:
    headers, body = dict(signed_mdn[0]), signed_mdn[1]
    if header:
        headers["Content-Type"] = _mutate(headers["Content-Type"].encode(), changes).decode(
            "latin-1"
        )
    else:
        body = _mutate(body, changes)
    _only_typed_errors(
        lambda: parse_mdn(
            headers, body, partner_certificates=[pki.aife.cert], require_signature=False
        )
    )


def _structures(data: bytes) -> None:
    entity = parse_entity(data)
    split_multipart(entity.body, entity.content_type.param("boundary") or "b")
    content_type_of(data)
    der.read(memoryview(data))


@pytest.mark.slow
@settings(max_examples=2000, **FUZZ_SETTINGS)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.lists(
            st.sampled_from(
                [
                    b"Content-Type: multipart/signed; boundary=b\r\n",
                    b"\r\n",
                    b"\n",
                    b"--b",
                    b"--b--",
                    b"\x30\x80",
                    b"\x00\x00",
                    b"\x04\x82\xff\xff",
                    b"\x24\x80",
                    b": ",
                    b"x",
                ]
            ),
            max_size=60,
        ).map(b"".join),
    )
)
def test_fuzz_raw_structures(data: bytes) -> None:
    def call() -> None:
        with contextlib.suppress(der.DerError):  # the raw reader's own typed error
            _structures(data)

    _only_typed_errors(call)
