"""Byte-exact MIME: hostile framing first, then builders that refuse header injection."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.as2.errors import As2BuildError, MimeError, Modifier
from protocols.as2.mime import (
    Entity,
    Headers,
    base64_lines,
    build_entity,
    decode_body,
    entity_parts,
    format_params,
    parse_content_type,
    parse_disposition,
    parse_entity,
    parse_field_block,
    split_unquoted,
)
from protocols.as2.multipart import _Finder, multipart_body, split_multipart

B = "b0undary"


def _multipart(*parts: bytes, eol: bytes = b"\r\n") -> memoryview:
    body = b"preamble" + eol
    for part in parts:
        body += b"--" + B.encode() + eol + part + eol
    return memoryview(body + b"--" + B.encode() + b"--" + eol + b"epilogue")


# --- hostile entities ----------------------------------------------------------------------


def test_entity_without_blank_line_is_truncated() -> None:
    with pytest.raises(MimeError, match="not terminated") as caught:
        parse_entity(b"Content-Type: text/plain\r\nbody without separator")
    assert caught.value.modifier is Modifier.UNEXPECTED_PROCESSING_ERROR


def test_header_block_over_64_kib_is_refused() -> None:
    with pytest.raises(MimeError, match="64 KiB"):
        parse_entity(b"X-Long: " + b"a" * 70000 + b"\r\n\r\nbody")


def test_too_many_headers_refused() -> None:
    with pytest.raises(MimeError, match="too many"):
        parse_entity(b"X-A: 1\r\n" * 101 + b"\r\nbody")


@pytest.mark.parametrize(
    "head", [b"no colon here", b"Bad Name: x", b" continued: first", b": empty name"]
)
def test_malformed_header_lines_are_refused(head: bytes) -> None:
    with pytest.raises(MimeError):
        parse_entity(head + b"\r\n\r\nbody")


def test_folded_header_is_unfolded() -> None:
    entity = parse_entity(b"Content-Type: text/plain;\r\n\tcharset=utf-8\r\n\r\nx")
    assert entity.content_type.param("charset") == "utf-8"


@pytest.mark.parametrize(
    "value",
    [
        "text",
        "text/",
        "/plain",
        'text/plain; name="unterminated',
        "text/plain; novalue",
        "text/plain; a=1; A=2",
        "text/plain; name*=bogus",
        "text/plain; name*=no-such-charset''x",
    ],
)
def test_malformed_content_types_are_refused(value: str) -> None:
    with pytest.raises(MimeError):
        parse_content_type(value)


def test_content_type_parameters_quoting_and_rfc2231() -> None:
    parsed = parse_content_type(
        'Multipart/Signed; Boundary="a;b \\"c\\""; micalg=sha-256; name*=utf-8\'\'%C3%A9t%C3%A9'
    )
    assert parsed.mime_type == "multipart/signed"
    assert parsed.param("boundary") == 'a;b "c"'
    assert parsed.param("micalg") == "sha-256"
    assert parsed.param("name") == "été"


def test_content_disposition_file_name() -> None:
    assert parse_disposition('attachment; filename="FSO1100A_1.xml"') == (
        "attachment",
        {"filename": "FSO1100A_1.xml"},
    )
    with pytest.raises(MimeError):
        parse_disposition("attach/ment")


# --- multipart framing ---------------------------------------------------------------------


def test_multipart_parts_are_exact_with_crlf_delimiters() -> None:
    parts = split_multipart(_multipart(b"one\r\n", b"two\n\r"), B)
    assert [bytes(p) for p in parts] == [b"one\r\n", b"two\n\r"]


def test_lf_delimiters_as_openssl_writes_them_keep_a_trailing_cr() -> None:
    parts = split_multipart(_multipart(b"ends with CR\r", b"x", eol=b"\n"), B)
    assert [bytes(p) for p in parts] == [b"ends with CR\r", b"x"]


def test_boundary_prefix_inside_content_is_not_a_delimiter() -> None:
    tricky = b"line\r\n--" + B.encode() + b"-not-really\r\nmore"
    parts = split_multipart(_multipart(tricky, b"second"), B)
    assert bytes(parts[0]) == tricky


def test_transport_padding_after_delimiter_is_allowed() -> None:
    body = f"--{B}  \t\r\npart\r\n--{B}-- \r\n".encode()
    assert [bytes(p) for p in split_multipart(memoryview(body), B)] == [b"part"]


def test_closing_delimiter_at_end_without_line_break() -> None:
    body = f"--{B}\r\npart\r\n--{B}--".encode()
    assert [bytes(p) for p in split_multipart(memoryview(body), B)] == [b"part"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (f"--{B}\r\npart one\r\n--{B}\r\npart two".encode(), "truncated"),
        (b"no delimiter at all", "not found"),
        (f"--{B}--\r\n".encode(), "no part"),
        (f"--{B}x\r\n".encode(), "not found"),
    ],
)
def test_truncated_or_empty_multipart_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(MimeError, match=reason):
        split_multipart(memoryview(body), B)


@pytest.mark.parametrize("boundary", ["", "x" * 71, "é"])
def test_invalid_boundaries_are_refused(boundary: str) -> None:
    with pytest.raises(MimeError, match="boundary"):
        split_multipart(memoryview(b"--x\r\n"), boundary)


def test_too_many_parts_are_refused() -> None:
    with pytest.raises(MimeError, match="too many"):
        split_multipart(_multipart(*[b"p"] * 20), B)


def test_multipart_body_builder_round_trips() -> None:
    built = b"".join(multipart_body([[b"a\r\n"], [b"\nb"]], B))
    assert [bytes(p) for p in split_multipart(memoryview(built), B)] == [b"a\r\n", b"\nb"]


# --- transfer encodings ----------------------------------------------------------------------


def _entity(encoding: str, body: bytes) -> Entity:
    return Entity(Headers((("Content-Transfer-Encoding", encoding),)), memoryview(body), None)


def test_transfer_encodings() -> None:
    assert bytes(decode_body(_entity("Binary", b"\r\n\x00"))) == b"\r\n\x00"
    assert decode_body(_entity("base64", base64_lines(b"\x00\xff" * 100))) == b"\x00\xff" * 100
    assert decode_body(_entity("quoted-printable", b"a=3Db")) == b"a=b"


@pytest.mark.parametrize(("encoding", "body"), [("base64", b"abc"), ("x-uuencode", b"")])
def test_bad_or_unknown_transfer_encodings_are_refused(encoding: str, body: bytes) -> None:
    with pytest.raises(MimeError):
        decode_body(_entity(encoding, body))


def test_base64_lines_stay_within_76_characters() -> None:
    lines = base64_lines(bytes(range(256)) * 10).split(b"\r\n")
    assert all(len(line) <= 76 for line in lines)
    assert binascii.a2b_base64(b"".join(lines)) == bytes(range(256)) * 10


# --- builders ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Subject", "x\r\nBcc: victim"),
        ("Subject", "x\nX-Injected: 1"),
        ("Subject", "x\rY"),
        ("Subject", "nul\0"),
        ("Bad Name", "x"),
        ("Colon:", "x"),
    ],
)
def test_header_injection_is_refused(name: str, value: str) -> None:
    with pytest.raises(As2BuildError):
        build_entity([(name, value)], b"body")


def test_parameter_injection_is_refused() -> None:
    with pytest.raises(As2BuildError, match="CR, LF"):
        format_params("attachment", [("filename", "a.xml\r\nX-Evil: 1")])


def test_parameters_are_quoted_or_rfc2231_encoded() -> None:
    value = format_params("attachment", [("filename", 'a "b";c.xml'), ("x", "tok")])
    assert value == 'attachment; filename="a \\"b\\";c.xml"; x=tok'
    assert parse_disposition(value)[1]["filename"] == 'a "b";c.xml'
    encoded = format_params("attachment", [("filename", "facture-été.xml")])
    assert parse_disposition(encoded)[1]["filename"] == "facture-été.xml"


def test_field_block_reads_disposition_fields() -> None:
    fields = parse_field_block(b"\r\nReporting-UA: x\r\nDisposition: a; processed\r\n\r\nignored")
    assert fields.get("disposition") == "a; processed"


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=4096),
    values=st.lists(
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40), max_size=5
    ),
)
def test_entity_round_trip_is_byte_exact(body: bytes, values: list[str]) -> None:
    headers = [(f"X-H{i}", v.strip()) for i, v in enumerate(values)]
    built = build_entity([("Content-Type", "application/octet-stream"), *headers], body)
    entity = parse_entity(built)
    assert bytes(entity.body) == body
    assert entity.raw is not None
    assert bytes(entity.raw) == built
    assert list(entity.headers)[1:] == headers
    assert b"".join(entity_parts([("A", "b")], body)) == b"A: b\r\n\r\n" + body


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=512), min_size=1, max_size=4))
def test_any_binary_parts_survive_multipart_framing(parts: list[bytes]) -> None:
    boundary = "----=_Raccord_0123456789abcdef"
    built = b"".join(multipart_body([[p] for p in parts], boundary))
    assert [bytes(p) for p in split_multipart(memoryview(built), boundary)] == parts


def test_field_block_over_64_kib_is_refused() -> None:
    with pytest.raises(MimeError, match="64 KiB"):
        parse_field_block(b"X: " + b"a" * 70000)


def test_empty_parameter_segments_are_ignored() -> None:
    assert parse_content_type("text/plain; ; charset=utf-8;").params == {"charset": "utf-8"}


def test_preamble_line_resembling_a_delimiter_is_skipped() -> None:
    body = f"preamble\n--{B}-ish line\r\n--{B}\r\npart\r\n--{B}--\r\n".encode()
    assert [bytes(p) for p in split_multipart(memoryview(body), B)] == [b"part"]


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=300),
    needle=st.binary(min_size=1, max_size=6),
    window=st.integers(min_value=6, max_value=40),
    starts=st.lists(st.integers(min_value=0, max_value=320), max_size=6),
)
def test_windowed_search_finds_what_bytes_find_finds(
    data: bytes, needle: bytes, window: int, starts: list[int]
) -> None:
    """The delimiter search copies small windows (1 MiB; a few bytes here) and must agree
    with `bytes.find` wherever a search starts, including across window edges."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_Finder, "WINDOW", window)
        finder = _Finder(memoryview(data), needle)
        for start in [0, *starts, *sorted(starts)]:
            assert finder.find(start) == data.find(needle, start)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_multipart_framing_across_search_windows(parts: list[bytes]) -> None:
    built = b"".join(multipart_body([[p] for p in parts], B))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_Finder, "WINDOW", 40)
        assert [bytes(p) for p in split_multipart(memoryview(built), B)] == parts


def test_quoted_and_plain_parameters_split_alike() -> None:
    plain = parse_content_type("multipart/signed; protocol=a; micalg=sha-256; boundary=b")
    quoted = parse_content_type('multipart/signed; protocol="a"; micalg=sha-256; boundary="b"')
    assert plain == quoted
    assert parse_content_type('a/b; x="1;2"; y=3').params == {"x": "1;2", "y": "3"}


def test_headers_lookups_ignore_case_and_count_repeats() -> None:
    headers = Headers((("Message-ID", "<a@b>"), ("message-id", "<c@d>"), ("X", "1")))
    assert headers.get("MESSAGE-ID") == "<a@b>"
    assert headers.count("Message-Id") == 2
    assert headers.count("absent") == 0
    assert headers.get("absent") is None


def _split_reference(text: str, separator: str) -> list[str]:
    """The character loop split_unquoted replaced: the specification it must keep."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise MimeError("unterminated quoted string")
    parts.append("".join(current))
    return parts


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet='ab;,"\\ =\n', max_size=40), separator=st.sampled_from(";,"))
def test_split_unquoted_agrees_with_the_character_loop(text: str, separator: str) -> None:
    try:
        expected = _split_reference(text, separator)
    except MimeError:
        with pytest.raises(MimeError, match="unterminated"):
            split_unquoted(text, separator)
    else:
        assert split_unquoted(text, separator) == expected


@pytest.mark.parametrize("size", [10, 4090, 4096, 5000, 60000])
def test_header_blocks_past_the_first_probe_are_read_whole(size: int) -> None:
    """Headers are looked for in the first 4 KiB, then in the first 64 KiB."""
    entity = parse_entity(b"X-Long: " + b"v" * size + b"\r\nA: b\r\n\r\nbody")
    assert entity.headers.get("x-long") == "v" * size
    assert entity.headers.get("a") == "b"
    assert bytes(entity.body) == b"body"


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600))
def test_base64_lines_are_57_byte_chunks_encoded(data: bytes) -> None:
    chunks = [binascii.b2a_base64(data[i : i + 57], newline=False) for i in range(0, len(data), 57)]
    assert base64_lines(data) == b"\r\n".join(chunks) + b"\r\n"
