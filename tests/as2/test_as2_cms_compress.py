"""CompressedData (RFC 3274): zip bombs and broken streams first, then independent checks.

This Debian OpenSSL has no zlib (`openssl cms -compress` fails), so our output is checked by
locating the content with `openssl asn1parse` and inflating it with Python's zlib, and inbound
vectors are assembled independently with asn1crypto.
"""

from __future__ import annotations

import tracemalloc
import zlib
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms

from protocols.as2.cms_compress import compress, decompress
from protocols.as2.errors import As2Error, As2LimitError, Modifier
from tests.as2.as2_helpers import der_octets, openssl, payload_entity

CONTENT = payload_entity(b"<Invoice>\n" + b"<Line>42</Line>\n" * 500 + b"</Invoice>\n")
MIB = 1024 * 1024


def _asn1crypto_compressed(stream: bytes, *, algorithm: str = "zlib") -> bytes:
    """CompressedData assembled by asn1crypto, independently of our encoder."""
    info = asn1_cms.ContentInfo(
        {
            "content_type": "compressed_data",
            "content": asn1_cms.CompressedData(
                {
                    "version": "v0",
                    "compression_algorithm": {"algorithm": algorithm},
                    "encap_content_info": {"content_type": "data", "content": stream},
                }
            ),
        }
    )
    encoded: bytes = info.dump()
    return encoded


def _zeros_stream(size: int) -> bytes:
    engine = zlib.compressobj(1)
    block = bytes(MIB)
    return b"".join(engine.compress(block) for _ in range(size // MIB)) + engine.flush()


# --- hostile --------------------------------------------------------------------------------


def test_zip_bomb_hits_the_ratio_cap_without_inflating() -> None:
    bomb = _asn1crypto_compressed(_zeros_stream(128 * MIB))  # ~125 KiB inflating to 128 MiB
    tracemalloc.start()
    try:
        with pytest.raises(As2LimitError, match="cap") as caught:
            decompress(bomb, max_size=1024 * MIB, max_ratio=20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.modifier is Modifier.DECOMPRESSION_FAILED
    assert peak < 32 * MIB  # stopped near the 20:1 budget, far from 128 MiB


def test_absolute_size_cap_applies_whatever_the_ratio() -> None:
    data = _asn1crypto_compressed(zlib.compress(b"x" * (2 * MIB)))
    with pytest.raises(As2LimitError):
        decompress(data, max_size=MIB, max_ratio=10_000)
    assert len(decompress(data, max_size=2 * MIB, max_ratio=10_000)) == 2 * MIB


def test_small_outputs_are_not_held_to_the_ratio() -> None:
    data = _asn1crypto_compressed(zlib.compress(bytes(512 * 1024)))  # ratio ~500, but small
    assert decompress(data, max_size=MIB, max_ratio=2) == bytes(512 * 1024)


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (zlib.compress(CONTENT)[:-10], "truncated"),
        (zlib.compress(CONTENT) + b"trailing", "after the end"),
        (b"not a zlib stream at all", "zlib stream invalid"),
    ],
    ids=["truncated", "trailing-data", "garbage"],
)
def test_broken_streams_fail_decompression(stream: bytes, reason: str) -> None:
    with pytest.raises(As2Error, match=reason) as caught:
        decompress(_asn1crypto_compressed(stream), max_size=MIB, max_ratio=100)
    assert caught.value.modifier is Modifier.DECOMPRESSION_FAILED


def test_unknown_compression_algorithm_is_refused() -> None:
    info = asn1_cms.ContentInfo.load(_asn1crypto_compressed(zlib.compress(CONTENT)))
    info["content"]["compression_algorithm"]["algorithm"] = "1.2.3.4"
    with pytest.raises(As2Error, match="unsupported compression"):
        decompress(info.dump(force=True), max_size=MIB, max_ratio=100)


def test_truncated_structure_is_always_a_typed_error() -> None:
    data = compress(CONTENT)
    for cut in range(0, len(data), 5):
        with pytest.raises(As2Error):
            decompress(data[:cut], max_size=MIB, max_ratio=100)


def test_not_compressed_data_is_refused() -> None:
    with pytest.raises(As2Error, match="expected CompressedData"):
        decompress(
            bytes.fromhex("301106092a864886f70d010701a00404026869"), max_size=MIB, max_ratio=9
        )


# --- independent checks ---------------------------------------------------------------------


def test_we_inflate_asn1crypto_compressed_data() -> None:
    data = _asn1crypto_compressed(zlib.compress(CONTENT))
    assert decompress(data, max_size=MIB, max_ratio=100) == CONTENT


def test_we_inflate_ber_chunked_compressed_data() -> None:
    stream = zlib.compress(CONTENT)
    chunks = b"".join(
        b"\x04" + bytes([len(stream[i : i + 100])]) + stream[i : i + 100]
        for i in range(0, len(stream), 100)
    )
    encap = b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01\xa0\x80\x24\x80"
    encap += chunks + b"\x00\x00" * 3
    inner = b"\x30\x80\x02\x01\x00\x30\x0d\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x03\x08"
    top = b"\x30\x80\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x01\x09\xa0\x80"
    data = top + inner + encap + b"\x00\x00" * 3
    assert decompress(data, max_size=MIB, max_ratio=100) == CONTENT


def test_asn1crypto_reads_our_compressed_data() -> None:
    info = asn1_cms.ContentInfo.load(compress([CONTENT[:7], CONTENT[7:]]))
    assert info["content_type"].native == "compressed_data"
    assert info["content"].decompressed == CONTENT


@pytest.mark.interop
def test_openssl_parses_our_compressed_data(tmp_path: Path) -> None:
    data = compress(CONTENT)
    (tmp_path / "c.der").write_bytes(data)
    listing = openssl("asn1parse", "-inform", "DER", "-in", tmp_path / "c.der").decode()
    assert "id-smime-ct-compressedData" in listing
    assert "zlib compression" in listing
    assert zlib.decompress(der_octets(listing, data)) == CONTENT
