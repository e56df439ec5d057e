"""Refuse hostile or malformed fields before a byte is spooled or a row is written.

Peers choose message ids and file names; they reach SQL, logs and later a remote file name.
Everything is bounded, must be encodable UTF-8 without control characters, and a file name
is a bare name (no directory part), so a later sender can never be walked out of its folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.model import Direction, Environment
from gateway.store import InvalidSubmission, Submission

MAX_NAME = 256
MAX_PEER_ID = 1024
MAX_FILE_NAME = 255
MAX_REASON = 4000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, exactly


def check_text(field: str, value: object, *, limit: int = MAX_NAME) -> str:
    """A non-empty, bounded, printable string; returned unchanged."""
    if not isinstance(value, str):
        raise InvalidSubmission(field, f"expected text, got {type(value).__name__}")
    if not value or not value.strip():
        raise InvalidSubmission(field, "empty")
    if len(value) > limit:
        raise InvalidSubmission(field, f"longer than {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidSubmission(field, "not valid Unicode text") from exc
    if _CONTROL.search(value):
        raise InvalidSubmission(field, "contains control characters")
    return value


def check_file_name(field: str, value: object) -> str:
    """A bare file name: no separator, no `.`/`..`, no control characters."""
    value = check_text(field, value, limit=MAX_FILE_NAME)
    if "/" in value or "\\" in value:
        raise InvalidSubmission(field, "must be a bare file name, not a path")
    if value in {".", ".."}:
        raise InvalidSubmission(field, "is a directory reference")
    return value


def check_size(field: str, value: object) -> None:
    """A size limit is a non-negative int (bool is refused: True is not a size)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSubmission(field, "must be a non-negative integer")


def check_submission(sub: Submission) -> None:
    """Every field of a submission, named precisely when refused."""
    check_text("source", sub.source)
    check_text("interface_code", sub.interface_code)
    check_text("protocol", sub.protocol)
    direction: object = sub.direction
    environment: object = sub.environment
    if not isinstance(direction, Direction):
        raise InvalidSubmission("direction", "must be a Direction")
    if environment is not None and not isinstance(environment, Environment):
        raise InvalidSubmission("environment", "must be an Environment or None")
    if sub.connection is not None:
        check_text("connection", sub.connection)
    if sub.peer_message_id is not None:
        check_text("peer_message_id", sub.peer_message_id, limit=MAX_PEER_ID)
    if sub.file_name is not None:
        check_file_name("file_name", sub.file_name)
    check_size("max_size", sub.max_size)
    check_size("expected_size", sub.expected_size)
    if sub.decide is not None and not callable(sub.decide):
        raise InvalidSubmission("decide", "must be callable")
    for n, event in enumerate(sub.events):
        if not (isinstance(event, tuple) and len(event) == 2 and isinstance(event[1], Mapping)):
            raise InvalidSubmission(f"events[{n}]", "must be a (kind, detail mapping) pair")
        check_text(f"events[{n}].kind", event[0])


def clip_reason(reason: object) -> str:
    """Failure reasons come from peers too: keep them, but bounded and single-line safe."""
    text = reason if isinstance(reason, str) else repr(reason)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:MAX_REASON]
