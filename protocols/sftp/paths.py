"""Pure path policy of an SFTP account's jail: what a virtual path means, or why it is refused.

The jail is not a directory on disk: an account sees `/`, its deposit area (`/out`) and its
collect area (`/in`), one directory per interface code it may use in each, and plain files
directly inside those. No client path is ever joined to a real filesystem path, so `..`,
absolute paths, symlinks and special files have nothing to reach: `..` is resolved lexically and
stops at `/` (as in a chroot), and whatever does not name one of the places above is refused
with the SFTP status the server hook raises.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum

from protocols.errors import RemoteProtocolError

MAX_PATH = 1024  # bytes of a client path
MAX_NAME = 255  # bytes of one file name
CODE = re.compile(r"[A-Z]{3}\d{4}[A-Z]")
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TEMP_SUFFIXES = (".part", ".filepart")


class Refusal(StrEnum):
    """The SFTP status family a refusal maps to (the server picks the `SFTPError` class)."""

    NO_SUCH_FILE = "no-such-file"
    PERMISSION_DENIED = "permission-denied"
    INVALID_NAME = "invalid-name"
    FAILURE = "failure"


class PathRefused(RemoteProtocolError):
    """The client named something outside its jail or not allowed there."""

    def __init__(self, refusal: Refusal, reason: str) -> None:
        super().__init__(f"{refusal.value}: {reason}")
        self.refusal = refusal
        self.reason = reason


class Area(StrEnum):
    DEPOSIT = "deposit"  # the client uploads flows here (`/out/<code>/`)
    COLLECT = "collect"  # the client downloads flows here (`/in/<code>/`)


class Kind(Enum):
    ROOT = "root"
    AREA = "area"
    CODE_DIR = "code-dir"
    ARCHIVE_DIR = "archive-dir"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Location:
    """A resolved virtual path; `path` is its canonical absolute spelling."""

    kind: Kind
    path: str
    area: Area | None = None
    code: str | None = None
    name: str | None = None
    archived: bool = False

    @property
    def is_dir(self) -> bool:
        return self.kind is not Kind.FILE


def check_name(name: str) -> str:
    """A bare file name a peer may use: bounded, printable, no separator, not `.`/`..`."""
    if not name or name in {".", ".."}:
        raise PathRefused(Refusal.INVALID_NAME, f"{name!r} is not a file name")
    if len(name.encode("utf-8")) > MAX_NAME:
        raise PathRefused(Refusal.INVALID_NAME, f"file name longer than {MAX_NAME} bytes")
    if "/" in name or "\\" in name:
        raise PathRefused(Refusal.INVALID_NAME, "a file name must not contain a separator")
    if name.isascii():  # the common case: in ASCII only C0 and DEL are in those categories
        hostile = _ASCII_CONTROL.search(name) is not None
    else:
        hostile = any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in name)
    if hostile:
        raise PathRefused(Refusal.INVALID_NAME, "control characters in a file name")
    return name


def completion_name(name: str, suffixes: Iterable[str] = TEMP_SUFFIXES) -> str | None:
    """`x` when `name` is the temporary name `x.part` (or another temp suffix), else None."""
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _decode(raw: bytes | str) -> str:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    if len(raw) > MAX_PATH:
        raise PathRefused(Refusal.INVALID_NAME, f"path longer than {MAX_PATH} bytes")
    if b"\x00" in raw:
        raise PathRefused(Refusal.INVALID_NAME, "NUL byte in path")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PathRefused(Refusal.INVALID_NAME, "path is not valid UTF-8") from None


def normalise(raw: bytes | str, *, cwd: str = "/") -> list[str]:
    """The components of `raw` made absolute against `cwd`, `.` dropped, `..` stopping at `/`."""
    text = _decode(raw)
    if "\\" in text:
        raise PathRefused(Refusal.INVALID_NAME, "backslash in path")
    joined = text if text.startswith("/") else f"{cwd.rstrip('/')}/{text}"
    parts: list[str] = []
    for part in joined.split("/"):
        if part in {"", "."}:
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


@dataclass(frozen=True, slots=True)
class Jail:
    """What one account may see: its deposit and collect codes and the area names."""

    deposit_codes: frozenset[str]
    collect_codes: frozenset[str]
    deposit_dir: str = "out"
    collect_dir: str = "in"
    archive_dir: str | None = None  # a sub-directory of each collect code dir, when archiving

    def areas(self) -> dict[str, Area]:
        """Area directory names this account sees (an area without codes is not shown)."""
        found: dict[str, Area] = {}
        if self.deposit_codes:
            found[self.deposit_dir] = Area.DEPOSIT
        if self.collect_codes:
            found[self.collect_dir] = Area.COLLECT
        return found

    def codes(self, area: Area) -> frozenset[str]:
        return self.deposit_codes if area is Area.DEPOSIT else self.collect_codes

    def resolve(self, raw: bytes | str, *, cwd: str = "/") -> Location:
        """Map a client path to a place in the jail, or raise PathRefused saying why not."""
        parts = normalise(raw, cwd=cwd)
        if not parts:
            return Location(Kind.ROOT, "/")
        area = self.areas().get(parts[0])
        if area is None:
            raise PathRefused(Refusal.NO_SUCH_FILE, f"/{parts[0]} does not exist in this account")
        base = f"/{parts[0]}"
        if len(parts) == 1:
            return Location(Kind.AREA, base, area=area)
        code = parts[1]
        if code not in self.codes(area):
            what = "an interface code" if CODE.fullmatch(code) else "a directory"
            raise PathRefused(Refusal.NO_SUCH_FILE, f"{base}/{code} is not {what} of this account")
        return self._inside(parts[2:], area, code, f"{base}/{code}")

    def _inside(self, rest: list[str], area: Area, code: str, base: str) -> Location:
        if not rest:
            return Location(Kind.CODE_DIR, base, area=area, code=code)
        archive = area is Area.COLLECT and self.archive_dir is not None
        if archive and rest[0] == self.archive_dir:
            if len(rest) == 1:
                path = f"{base}/{rest[0]}"
                return Location(Kind.ARCHIVE_DIR, path, area=area, code=code, archived=True)
            if len(rest) == 2:
                name = check_name(rest[1])
                path = f"{base}/{rest[0]}/{name}"
                return Location(Kind.FILE, path, area=area, code=code, name=name, archived=True)
        if len(rest) > 1:
            raise PathRefused(Refusal.NO_SUCH_FILE, f"{base}/{rest[0]} is not a directory")
        name = check_name(rest[0])
        return Location(Kind.FILE, f"{base}/{name}", area=area, code=code, name=name)

    def children(self, location: Location) -> list[str]:
        """Sub-directory names of a directory (files are listed by the server)."""
        if location.kind is Kind.ROOT:
            return sorted(self.areas())
        if location.kind is Kind.AREA and location.area is not None:
            return sorted(self.codes(location.area))
        if location.kind is Kind.CODE_DIR and location.area is Area.COLLECT and self.archive_dir:
            return [self.archive_dir]
        return []


def require(location: Location, *, kind: Kind, area: Area | None = None, action: str) -> None:
    """Refuse `action` unless `location` is of `kind` (in `area`): the operation policy."""
    if location.kind is kind and (area is None or location.area is area):
        return
    if kind is Kind.FILE and location.is_dir:
        raise PathRefused(
            Refusal.PERMISSION_DENIED, f"cannot {action} {location.path}: a directory"
        )
    raise PathRefused(Refusal.PERMISSION_DENIED, f"cannot {action} {location.path}")
