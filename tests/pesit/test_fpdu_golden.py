"""Golden bytes for every FPDU type, written by hand from pesit.md §3-§5 (not by the encoder).

Each line is: header (length, phase, type, ID.DST, byte 6) | parameter units or data.
Ids: the requester is 0x01, the server 0x05. Requests go to 0x05, answers to 0x01.
"""

from __future__ import annotations

import pytest

from protocols.pesit.diagnostics import Diagnostic, DiagnosticCode
from protocols.pesit.fpdu import Fpdu, FpduType, decode_fpdu, encode_fpdu
from protocols.pesit.pi import PI, Params, SyncPoints

F = FpduType
OK = (PI.DIAGNOSTIC, Diagnostic.SUCCESS.code)
P = Params.of


def _golden(wire: str) -> bytes:
    return bytes.fromhex(wire.replace("|", ""))


FILE_ID = P((PI.FILE_TYPE, 0), (PI.FILE_NAME, "F1"))
GOLDEN: list[tuple[str, Fpdu]] = [
    (
        "001b 4020 00 01 | 0303434c49 0403535256 060102 0703002002 160102",
        Fpdu(
            F.CONNECT, 0, 1,
            P((PI.REQUESTER_ID, "CLI"), (PI.SERVER_ID, "SRV"), (PI.VERSION, 2),
              (PI.SYNC_POINTS, SyncPoints(32, 2)), (PI.ACCESS_TYPE, 2)),
        ),
    ),
    (
        "000e 4021 01 05 | 060102 0703002002",
        Fpdu(F.ACONNECT, 1, 5, P((PI.VERSION, 2), (PI.SYNC_POINTS, SyncPoints(32, 2)))),
    ),
    (
        "000b 4022 01 05 | 0203030134",
        Fpdu(F.RCONNECT, 1, 5, P((PI.DIAGNOSTIC, Diagnostic.VERSION_NOT_SUPPORTED.code))),
    ),
    ("000b 4023 05 01 | 0203000000", Fpdu(F.RELEASE, 5, 1, P(OK))),
    ("0006 4024 01 05", Fpdu(F.RELCONF, 1, 5)),
    (
        "000b 4025 05 01 | 0203030137",
        Fpdu(F.ABORT, 5, 1, P((PI.DIAGNOSTIC, Diagnostic.PROTOCOL_ERROR.code))),
    ),
    (
        "002e c011 05 00 | 09070b01000c024631 0d0224c9 100102 110101 19021000"
        " 1e071f018020020400 2806290100 2a0101",
        Fpdu(
            F.CREATE, 5, 0,
            P((PI.FILE_ID, FILE_ID), (PI.TRANSFER_ID, 0x24C9), (PI.DATA_CODE, 2),
              (PI.PRIORITY, 1), (PI.MAX_ENTITY_SIZE, 4096),
              (PI.LOGICAL_ATTRIBUTES, P((PI.ARTICLE_FORMAT, 0x80), (PI.ARTICLE_LENGTH, 1024))),
              (PI.PHYSICAL_ATTRIBUTES, P((PI.ALLOCATION_UNIT, 0), (PI.MAX_SIZE, 1)))),
        ),
    ),
    (
        "0013 c030 01 00 | 0203000000 0d0224c9 19021000",
        Fpdu(F.ACK_CREATE, 1, 0, P(OK, (PI.TRANSFER_ID, 0x24C9), (PI.MAX_ENTITY_SIZE, 4096))),
    ),
    (
        "001f c012 05 00 | 09070b01000c024631 0d0100 0e01e0 0f0101 110101 1902ffff",
        Fpdu(
            F.SELECT, 5, 0,
            P((PI.FILE_ID, FILE_ID), (PI.TRANSFER_ID, 0), (PI.ATTRIBUTES_ASKED, 0xE0),
              (PI.RESTART, 1), (PI.PRIORITY, 1), (PI.MAX_ENTITY_SIZE, 0xFFFF)),
        ),
    ),
    (
        "0041 c031 01 00 | 0203000000 09070b01000c024631 0d020102 100102 19021000"
        " 1e071f018020020400 2807290100 2a020400 320e330c323630313139303132353035",
        Fpdu(
            F.ACK_SELECT, 1, 0,
            P(OK, (PI.FILE_ID, FILE_ID), (PI.TRANSFER_ID, 0x0102), (PI.DATA_CODE, 2),
              (PI.MAX_ENTITY_SIZE, 4096),
              (PI.LOGICAL_ATTRIBUTES, P((PI.ARTICLE_FORMAT, 0x80), (PI.ARTICLE_LENGTH, 1024))),
              (PI.PHYSICAL_ATTRIBUTES, P((PI.ALLOCATION_UNIT, 0), (PI.MAX_SIZE, 1024))),
              (PI.HISTORICAL_ATTRIBUTES, P((PI.CREATION_DATE, "260119012505")))),
        ),
    ),
    ("000b c013 05 00 | 0203000000", Fpdu(F.DESELECT, 5, 0, P(OK))),
    ("000b c032 01 00 | 0203000000", Fpdu(F.ACK_DESELECT, 1, 0, P(OK))),
    ("000a c014 05 00 | 15020000", Fpdu(F.ORF, 5, 0, P((PI.COMPRESSION, b"\0\0")))),
    ("000b c033 01 00 | 0203000000", Fpdu(F.ACK_ORF, 1, 0, P(OK))),
    ("000b c015 05 00 | 0203000000", Fpdu(F.CRF, 5, 0, P(OK))),
    ("000b c034 01 00 | 0203000000", Fpdu(F.ACK_CRF, 1, 0, P(OK))),
    ("0009 c001 05 00 | 120103", Fpdu(F.READ, 5, 0, P((PI.RESTART_POINT, 3)))),
    ("000b c035 01 00 | 0203000000", Fpdu(F.ACK_READ, 1, 0, P(OK))),
    ("0006 c002 05 00", Fpdu(F.WRITE, 5, 0)),
    (
        "000e c036 01 00 | 0203000000 120100",
        Fpdu(F.ACK_WRITE, 1, 0, P(OK, (PI.RESTART_POINT, 0))),
    ),
    ("000a c003 05 00 | 1402012c", Fpdu(F.SYN, 5, 0, P((PI.SYNC_NUMBER, 300)))),
    ("000a c038 01 00 | 1402012c", Fpdu(F.ACK_SYN, 1, 0, P((PI.SYNC_NUMBER, 300)))),
    ("000b c004 05 00 | 0203000000", Fpdu(F.DTF_END, 5, 0, P(OK))),
    (
        "000f c008 05 00 | 1b03100000 1c020400",
        Fpdu(F.TRANS_END, 5, 0, P((PI.BYTE_COUNT, 1 << 20), (PI.ARTICLE_COUNT, 1024))),
    ),
    (
        "0014 c037 01 00 | 0203000000 1b03100000 1c020400",
        Fpdu(F.ACK_TRANS_END, 1, 0, P(OK, (PI.BYTE_COUNT, 1 << 20), (PI.ARTICLE_COUNT, 1024))),
    ),
    ("0009 c005 05 00 | 140101", Fpdu(F.RESYN, 5, 0, P((PI.SYNC_NUMBER, 1)))),
    ("0009 c039 01 00 | 140101", Fpdu(F.ACK_RESYN, 1, 0, P((PI.SYNC_NUMBER, 1)))),
    (
        "000e c006 05 00 | 02030200d8 130108",
        Fpdu(F.IDT, 5, 0, P((PI.DIAGNOSTIC, Diagnostic.VOLUNTARY_STOP.code), (PI.END_CODE, 8))),
    ),
    ("0006 c03a 01 00", Fpdu(F.ACK_IDT, 1, 0)),
    ("000a c016 05 00 | 63026869", Fpdu(F.MSG, 5, 0, P((PI.FREE_MESSAGE, "hi")))),
    ("000a c017 05 00 | 63026869", Fpdu(F.MSGDM, 5, 0, P((PI.FREE_MESSAGE, "hi")))),
    ("000a c018 05 00 | 63026869", Fpdu(F.MSGMM, 5, 0, P((PI.FREE_MESSAGE, "hi")))),
    ("000a c019 05 00 | 63026869", Fpdu(F.MSGFM, 5, 0, P((PI.FREE_MESSAGE, "hi")))),
    (
        "000b c03b 01 00 | 02030200d1",
        Fpdu(F.ACK_MSG, 1, 0, P((PI.DIAGNOSTIC, DiagnosticCode(2, 209)))),
    ),
    ("0009 0000 05 00 | 616263", Fpdu(F.DTF, 5, data=(b"abc",))),
    ("000d 0000 05 02 | 00026162 000163", Fpdu(F.DTF, 5, data=(b"ab", b"c"))),
    ("0008 0041 05 00 | 6162", Fpdu(F.DTFDA, 5, data=(b"ab",))),
    ("0008 0040 05 00 | 6364", Fpdu(F.DTFMA, 5, data=(b"cd",))),
    ("0007 0042 05 00 | 65", Fpdu(F.DTFFA, 5, data=(b"e",))),
]  # fmt: skip


def test_every_fpdu_type_has_a_golden() -> None:
    assert {fpdu.kind for _, fpdu in GOLDEN} == set(FpduType)


@pytest.mark.parametrize(("wire", "fpdu"), GOLDEN, ids=[f.kind.name for _, f in GOLDEN])
def test_encoder_writes_the_golden_bytes(wire: str, fpdu: Fpdu) -> None:
    assert encode_fpdu(fpdu) == _golden(wire)


@pytest.mark.parametrize(("wire", "fpdu"), GOLDEN, ids=[f.kind.name for _, f in GOLDEN])
def test_decoder_reads_the_golden_bytes(wire: str, fpdu: Fpdu) -> None:
    assert decode_fpdu(_golden(wire)) == fpdu


def test_long_li_golden() -> None:
    """PI 99 of 300 characters: `63 FF 01 2C` then the text (pesit.md §5, long LI form)."""
    text = "A" * 300
    wire = bytes.fromhex("0136 c016 0500 63ff012c") + text.encode()
    fpdu = Fpdu(F.MSG, 5, 0, P((PI.FREE_MESSAGE, text)))
    assert len(wire) == 0x136
    assert decode_fpdu(wire) == Fpdu(F.MSG, 5, 0, Params(((PI.FREE_MESSAGE, text),)))
    # PI 99 is limited to 254 characters when writing: the long form is for raw units.
    raw = b"z" * 300
    assert (
        encode_fpdu(Fpdu(F.MSG, 5, 0, P((200, raw))))
        == bytes.fromhex("0136 c016 0500 c8ff012c") + raw
    )
    assert fpdu.params.text(PI.FREE_MESSAGE) == text
