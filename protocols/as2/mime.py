"""Minimal byte-exact MIME: strict header parsing and builders (multipart framing: multipart.py).

The `email` package is not used because it re-encodes line endings, and a signature covers
the exact bytes of the signed entity. Here bodies are memoryview slices of what arrived: no
byte is rewritten, LF-only or binary payloads come out as they went in. Builders refuse
header injection (CR, LF or NUL in a value).
"""

from __future__ import annotations

import binascii
import codecs
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from protocols.as2.der import Chunk
from protocols.as2.errors import As2BuildError, MimeError

__all__ = [
    "ContentType",
    "Entity",
    "Headers",
    "base64_lines",
    "build_entity",
    "check_header",
    "decode_body",
    "entity_parts",
    "format_params",
    "parse_content_type",
    "parse_disposition",
    "parse_entity",
    "parse_field_block",
    "split_unquoted",
]

MAX_HEADER_BYTES = 64 * 1024
_HEAD_PROBE = 4 * 1024
MAX_HEADERS = 100
_NAME = re.compile(r"[!-9;-~]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BREAK = re.compile("[\r\n\0]")  # what would let a value start a header or end the block


@dataclass(frozen=True, slots=True)
class _Index:
    names: tuple[str, ...]  # lowercased, in order
    first: dict[str, str]  # lowercased name -> first value


@dataclass(frozen=True, slots=True)
class Headers:
    """Ordered header fields; lookups ignore case (names are lowercased once, at first use)."""

    fields: tuple[tuple[str, str], ...] = ()
    _index: _Index | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> Headers:
        return cls(tuple((str(k), str(v).strip()) for k, v in mapping.items()))

    def get(self, name: str) -> str | None:
        """The first field of that name."""
        return self._indexed().first.get(name.lower())

    def count(self, name: str) -> int:
        """How many fields have that name."""
        return self._indexed().names.count(name.lower())

    def _indexed(self) -> _Index:
        index = self._index
        if index is None:
            names = tuple(name.lower() for name, _ in self.fields)
            first: dict[str, str] = {}
            for name, (_, value) in zip(names, self.fields, strict=True):
                first.setdefault(name, value)
            index = _Index(names, first)
            object.__setattr__(self, "_index", index)
        return index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.fields)


@dataclass(frozen=True, slots=True)
class ContentType:
    """`type/subtype` lowercased, with parameters keyed by lowercased name."""

    mime_type: str
    params: Mapping[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        return self.params.get(name.lower())


@dataclass(frozen=True, slots=True)
class Entity:
    """A MIME entity; `raw` is its exact bytes (None when headers came from HTTP)."""

    headers: Headers
    body: memoryview
    raw: memoryview | None
    _content_type: ContentType | None = field(default=None, init=False, repr=False,
                                              compare=False)  # fmt: skip

    @property
    def content_type(self) -> ContentType:
        """Parsed on first use, then kept (unwrapping asks several times)."""
        if self._content_type is None:
            value = self.headers.get("Content-Type")
            parsed = parse_content_type(value) if value else ContentType("text/plain")
            object.__setattr__(self, "_content_type", parsed)
            return parsed
        return self._content_type


def parse_entity(data: Chunk) -> Entity:
    """Split headers from body without touching a byte of the body."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    found = _header_lines(bytes(view[:_HEAD_PROBE]))  # headers are short: copy a little first
    if found is None and len(view) > _HEAD_PROBE:
        found = _header_lines(bytes(view[: MAX_HEADER_BYTES + 2]))
    if found is None:
        raise MimeError("header block not terminated (truncated or over 64 KiB)")
    lines, pos = found
    return Entity(_header_fields(lines), view[pos:], view)


def _header_lines(head: bytes) -> tuple[list[bytes], int] | None:
    """The header lines and where the body starts; None when no blank line ends them."""
    lines: list[bytes] = []
    pos = 0
    while True:
        newline = head.find(b"\n", pos)
        if newline < 0:
            return None
        line = head[pos:newline].removesuffix(b"\r")
        pos = newline + 1
        if not line:
            return lines, pos
        lines.append(line)


def parse_field_block(data: Chunk) -> Headers:
    """Header-syntax fields up to a blank line or the end (message/disposition-notification)."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    if len(view) > MAX_HEADER_BYTES:
        raise MimeError("field block over 64 KiB")
    lines: list[bytes] = []
    for line in bytes(view).split(b"\n"):
        stripped = line.removesuffix(b"\r")
        if not stripped:
            if lines:
                break
            continue
        lines.append(stripped)
    return _header_fields(lines)


def _header_fields(lines: list[bytes]) -> Headers:
    fields: list[tuple[str, str]] = []
    for line in lines:
        text = _text(line)
        if text[:1] in (" ", "\t"):
            if not fields:
                raise MimeError("header block starts with a continuation line")
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {text.strip()}".strip())
            continue
        name, colon, value = text.partition(":")
        if not colon or not _NAME.fullmatch(name):
            raise MimeError(f"malformed header line {text[:60]!r}")
        fields.append((name, value.strip()))
        if len(fields) > MAX_HEADERS:
            raise MimeError("too many header fields")
    return Headers(tuple(fields))


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_content_type(value: str) -> ContentType:
    """`type/subtype; name=value; name="quoted"` (RFC 2045, RFC 2231 `name*`)."""
    segments = split_unquoted(value, ";")
    main = segments[0].strip().lower()
    kind, slash, sub = main.partition("/")
    if not slash or not _TOKEN.fullmatch(kind) or not _TOKEN.fullmatch(sub):
        raise MimeError(f"malformed content type {value[:60]!r}")
    return ContentType(main, parse_params(segments[1:]))


def parse_disposition(value: str) -> tuple[str, dict[str, str]]:
    """Content-Disposition: (`attachment`, {`filename`: ...})."""
    segments = split_unquoted(value, ";")
    kind = segments[0].strip().lower()
    if not _TOKEN.fullmatch(kind):
        raise MimeError(f"malformed Content-Disposition {value[:60]!r}")
    return kind, parse_params(segments[1:])


def parse_params(segments: Sequence[str]) -> dict[str, str]:
    """Parameters from `name=value` segments; duplicates are refused (ambiguity)."""
    params: dict[str, str] = {}
    for segment in segments:
        if not segment.strip():
            continue
        name, equals, raw = segment.partition("=")
        name = name.strip().lower()
        if not equals or not _TOKEN.fullmatch(name):
            raise MimeError(f"malformed parameter {segment[:60]!r}")
        value = _unquote(raw.strip())
        if name.endswith("*"):
            name, value = name[:-1], _rfc2231(value)
        if name in params:
            raise MimeError(f"parameter {name!r} given twice")
        params[name] = value
    return params


def split_unquoted(text: str, separator: str) -> list[str]:
    """Split on `separator` outside double quotes (backslash escapes inside quotes)."""
    if '"' not in text:  # nothing quoted: a plain split says the same, at C speed
        return text.split(separator)
    if "\\" not in text:  # quotes pair up plainly: odd pieces of a split on '"' are inside
        inside = text.split('"')[1::2]
        if text.count('"') % 2 == 0 and not any(separator in piece for piece in inside):
            return text.split(separator)  # no separator is quoted: the same split, at C speed
    parts: list[str] = []
    current: list[str] = []
    for piece in _tokens(separator).findall(text):
        if piece == separator:
            parts.append("".join(current))
            current = []
        elif piece == '"':  # a quote that never closes
            raise MimeError("unterminated quoted string")
        else:
            current.append(piece)
    parts.append("".join(current))
    return parts


def _tokens(separator: str) -> re.Pattern[str]:
    """A whole quoted string (a backslash escapes the next character), a run of other
    characters, the separator, or a lone quote; `re` caches the compiled pattern."""
    other = re.escape(separator)
    return re.compile(rf'"(?:[^"\\]|\\.)*"|[^"{other}]+|{other}|"', re.DOTALL)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        return re.sub(r"\\(.)", r"\1", inner) if "\\" in inner else inner
    return value


def _rfc2231(value: str) -> str:
    charset, quote1, rest = value.partition("'")
    _, quote2, encoded = rest.partition("'")
    if not quote1 or not quote2:
        raise MimeError("malformed RFC 2231 parameter")
    try:
        codec = codecs.lookup(charset or "us-ascii").name
        return urllib.parse.unquote(encoded, encoding=codec, errors="strict")
    except (LookupError, UnicodeDecodeError) as exc:
        raise MimeError(f"undecodable RFC 2231 parameter: {exc}") from exc


def decode_body(entity: Entity) -> Chunk:
    """The body with its Content-Transfer-Encoding removed (binary passes through)."""
    encoding = (entity.headers.get("Content-Transfer-Encoding") or "binary").strip().lower()
    if encoding in ("binary", "7bit", "8bit"):
        return entity.body
    try:
        if encoding == "base64":
            return binascii.a2b_base64(entity.body)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(bytes(entity.body))
    except binascii.Error as exc:
        raise MimeError(f"invalid {encoding} body: {exc}") from exc
    raise MimeError(f"unsupported Content-Transfer-Encoding {encoding!r}")


# --- builders ------------------------------------------------------------------------------


def check_header(name: str, value: str) -> None:
    """Refuse what would let a value start a new header or end the block."""
    if not _NAME.fullmatch(name):
        raise As2BuildError(f"invalid header name {name!r}")
    if _BREAK.search(value):
        raise As2BuildError(f"header {name}: CR, LF or NUL in the value (injection refused)")


def format_params(main: str, params: Sequence[tuple[str, str]]) -> str:
    """`main; name=value` with quoting, and RFC 2231 encoding for non-ASCII values."""
    rendered = [main]
    for name, value in params:
        if _BREAK.search(value):
            raise As2BuildError(f"parameter {name}: CR, LF or NUL refused")
        if not value.isascii():
            rendered.append(f"{name}*=utf-8''{urllib.parse.quote(value, safe='')}")
        elif _TOKEN.fullmatch(value):
            rendered.append(f"{name}={value}")
        else:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            rendered.append(f'{name}="{escaped}"')
    return "; ".join(rendered)


def entity_parts(headers: Sequence[tuple[str, str]], body: Chunk) -> list[Chunk]:
    """Header block and body, unjoined (the body is not copied)."""
    for name, value in headers:
        check_header(name, value)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return [head.encode("utf-8"), body]


def build_entity(headers: Sequence[tuple[str, str]], body: Chunk) -> bytes:
    return b"".join(entity_parts(headers, body))


def base64_lines(data: bytes) -> bytes:
    """Base64 in 76-character CRLF lines (RFC 2045): encoded once, then cut (57 bytes, a
    multiple of 3, encode to exactly one line)."""
    encoded = binascii.b2a_base64(data, newline=False)
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    return b"\r\n".join(lines) + b"\r\n"
