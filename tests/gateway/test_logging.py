"""No private key PEM and no configured password ever reaches a log line, at any level."""

from __future__ import annotations

import io
import json
import logging

import pytest

from gateway.logging import MASK, REDACTOR, configure, get_logger
from tests.pki import TestCA

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    configure(level="debug", stream=stream)
    REDACTOR.register([PASSWORD])
    return stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_events_are_json_with_context(captured: io.StringIO) -> None:
    get_logger("t").info("accepted", message_id="m1", connection="c1", interface_code="FSO1100A")
    (line,) = lines(captured)
    assert line["event"] == "accepted"
    assert line["message_id"] == "m1"
    assert line["interface_code"] == "FSO1100A"
    assert line["level"] == "info"
    assert "timestamp" in line


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "critical"])
def test_private_key_pem_never_logged(captured: io.StringIO, level: str) -> None:
    pem = TestCA().issue("leaf").key_pem().decode()
    logger = get_logger("t")
    getattr(logger, level)("oops", detail=f"loaded {pem}", nested={"blob": [pem]})
    getattr(logger, level)(pem)
    try:
        raise ValueError(pem)
    except ValueError:
        logger.exception("failed")
    logging.getLogger("thirdparty").error("lib says %s", pem)
    text = captured.getvalue()
    assert "PRIVATE KEY" not in text
    assert pem.splitlines()[1] not in text
    assert MASK in text


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "critical"])
def test_configured_password_never_logged(captured: io.StringIO, level: str) -> None:
    logger = get_logger("t")
    getattr(logger, level)("connect", url=f"sftp://user:{PASSWORD}@host/", password=PASSWORD)
    getattr(logger, level)(f"with {PASSWORD} inline", key_passphrase="anything")
    logging.getLogger("thirdparty").warning("auth with %s", PASSWORD)
    text = captured.getvalue()
    assert PASSWORD not in text
    assert "anything" not in text
    assert text.count(MASK) >= 3


def test_secret_looking_keys_are_masked(captured: io.StringIO) -> None:
    get_logger("t").info("x", api_token="abc", authorization="Bearer zzz", token=None)
    (line,) = lines(captured)
    assert line["api_token"] == MASK
    assert line["authorization"] == MASK
    assert line["token"] is None


def test_loggers_created_before_configure_still_redact() -> None:
    early = get_logger("early")
    stream = io.StringIO()
    configure(level="info", stream=stream)
    REDACTOR.register([PASSWORD])
    early.info("x", detail=PASSWORD)
    (line,) = lines(stream)
    assert line["detail"] == MASK
    assert line["module"] == "early"
