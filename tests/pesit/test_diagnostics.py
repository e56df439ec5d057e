"""Diagnostics: the PI 2 wire form of pesit.md §9 and the errors that carry it."""

from __future__ import annotations

import pytest

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.pesit.diagnostics import (
    DecodeError,
    Diagnostic,
    DiagnosticCode,
    Fault,
    PesitError,
    PesitLocalError,
)


@pytest.mark.parametrize(
    ("diagnostic", "wire"),
    [
        (Diagnostic.SUCCESS, "000000"),
        (Diagnostic.FILE_NOT_FOUND, "0200cd"),  # pesit.md's own example: 2/205 = 02 00 CD
        (Diagnostic.LARGER_THAN_ANNOUNCED, "0200e0"),
        (Diagnostic.PROTOCOL_ERROR, "030137"),
        (Diagnostic.PARAMETER_ERROR, "03013e"),
        (Diagnostic.WRONG_COUNTS, "03013f"),
        (Diagnostic.CONNECTION_OTHER, "03018f"),
    ],
)
def test_wire_value_is_type_byte_then_whole_number(diagnostic: Diagnostic, wire: str) -> None:
    assert diagnostic.wire == bytes.fromhex(wire)
    assert DiagnosticCode.from_bytes(bytes.fromhex(wire)).known is diagnostic


def test_every_diagnostic_type_is_its_hundreds() -> None:
    for diagnostic in Diagnostic:
        assert diagnostic.code.type == diagnostic.value // 100
        assert diagnostic.code.type in {0, 2, 3}


def test_unknown_code_from_a_peer_is_kept_not_rejected() -> None:
    code = DiagnosticCode.from_bytes(bytes.fromhex("0200d0"))  # 2/208: not in §9
    assert code.known is None
    assert not code.ok
    assert str(code) == "2/208"
    assert code.to_bytes() == bytes.fromhex("0200d0")


@pytest.mark.parametrize("size", [0, 2, 4])
def test_pi2_of_wrong_size_is_a_parameter_error(size: int) -> None:
    with pytest.raises(DecodeError) as caught:
        DiagnosticCode.from_bytes(b"\x00" * size)
    assert caught.value.fault is Fault.BAD_VALUE
    assert caught.value.diagnostic is Diagnostic.PARAMETER_ERROR


@pytest.mark.parametrize(("type_", "code"), [(256, 0), (-1, 0), (3, 65536)])
def test_out_of_range_code_is_refused_locally(type_: int, code: int) -> None:
    with pytest.raises(PesitLocalError):
        DiagnosticCode(type_, code).to_bytes()


def test_only_all_zeros_is_success() -> None:
    assert DiagnosticCode(0, 0).ok
    assert not DiagnosticCode(0, 1).ok
    assert not DiagnosticCode(3, 0).ok


def test_errors_are_split_by_fault_and_carry_their_answer() -> None:
    remote = PesitError(Diagnostic.PROTOCOL_ERROR, "DTF in CN03")
    local = PesitLocalError(Diagnostic.PARAMETER_ERROR, "PI 12 too long")
    assert isinstance(remote, RemoteProtocolError)
    assert isinstance(local, LocalProtocolError)
    assert remote.diagnostic is Diagnostic.PROTOCOL_ERROR
    assert "3/311" in str(remote)
    assert "DTF in CN03" in str(remote)
    assert local.reason == "PI 12 too long"
    assert str(Diagnostic.PROTOCOL_ERROR) == "3/311 protocol_error"


@pytest.mark.parametrize(
    ("fault", "answer"),
    [
        (Fault.TRUNCATED, Diagnostic.PROTOCOL_ERROR),
        (Fault.LENGTH_MISMATCH, Diagnostic.PROTOCOL_ERROR),
        (Fault.UNKNOWN_TYPE, Diagnostic.PROTOCOL_ERROR),
        (Fault.BAD_FRAMING, Diagnostic.PROTOCOL_ERROR),
        (Fault.BAD_CONCATENATION, Diagnostic.PROTOCOL_ERROR),
        (Fault.ZERO_LENGTH, Diagnostic.PARAMETER_ERROR),
        (Fault.BAD_VALUE, Diagnostic.PARAMETER_ERROR),
        (Fault.DUPLICATE, Diagnostic.PARAMETER_ERROR),
        (Fault.MISSING, Diagnostic.PARAMETER_ERROR),
    ],
)
def test_structure_faults_answer_311_parameter_faults_318(fault: Fault, answer: Diagnostic) -> None:
    error = DecodeError(fault, "x")
    assert error.diagnostic is answer
    assert error.fault is fault
    assert fault.value in str(error)
