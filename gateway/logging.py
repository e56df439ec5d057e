"""structlog JSON lines on stdout, with a redaction processor that runs last-but-one.

Redaction is defence in depth: code never logs secrets on purpose, and this processor still
masks values under secret-looking keys, any PEM private-key block, and every secret value the
configuration loader registered (passwords, passphrases, tokens), at every level.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import FilteringBoundLogger

MASK = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"(pass(word|phrase)?|secret|token|authorization|private[_-]?key|api[_-]?key|pwd)",
    re.IGNORECASE,
)
_PEM_PRIVATE = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END \1PRIVATE KEY-----|\Z)", re.DOTALL
)


class Redactor:
    """Masks secrets in an event dict; knows the literal secrets the config loader registered."""

    def __init__(self) -> None:
        self._literals: set[str] = set()

    def register(self, secrets: Iterable[str]) -> None:
        """Remember literal secret values (at least 4 characters, to avoid masking noise)."""
        self._literals.update(s for s in secrets if len(s) >= 4)

    def scrub(self, value: object) -> object:
        """Return `value` with every secret it holds masked (recurses into containers)."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            text = _PEM_PRIVATE.sub(MASK, value)
            for secret in self._literals:
                if secret in text:
                    text = text.replace(secret, MASK)
            return text
        if isinstance(value, dict):
            return {k: self._scrub_item(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub(v) for v in value]
        return value

    def _scrub_item(self, key: str, value: object) -> object:
        if _SECRET_KEY.search(key) and value not in (None, "", False):
            return MASK
        return self.scrub(value)

    def __call__(
        self, _logger: object, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            event_dict[key] = self._scrub_item(key, event_dict[key])
        return event_dict


REDACTOR = Redactor()


def configure(*, level: str = "info", stream: TextIO | None = None) -> None:
    """Route structlog (and stdlib logging from libraries) to JSON lines on `stream`."""
    out = stream if stream is not None else sys.stdout
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            REDACTOR,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(_StdlibBridge())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))


class _StdlibBridge(logging.Formatter):
    """Formats third-party stdlib log records through the same redacting JSON pipeline."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "event": record.getMessage(),
            "logger": record.name,
            "level": record.levelname.lower(),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        scrubbed = REDACTOR(None, "", event)
        return structlog.processors.JSONRenderer(sort_keys=True)(None, "", scrubbed)  # type: ignore[return-value]


def get_logger(name: str) -> FilteringBoundLogger:
    """A lazy logger (configuration read at each call) whose events carry `module=name`."""
    logger: FilteringBoundLogger = structlog.get_logger(module=name)
    return logger
