"""What the FPDUs of the connection and file phases carry, both ways (pesit.md §5-§6).

Builders write the superset the recordings show; readers take what they find with lenient
defaults. Negotiation is conservative: version E only, no CRC, no compression, no RESYN, the
smaller sync interval and window, the smaller entity size.
"""

from __future__ import annotations

from protocols.pesit.diagnostics import Diagnostic, PesitError
from protocols.pesit.events import ConnectionRequested, FileInfo
from protocols.pesit.pi import PI, Params, SyncPoints
from protocols.pesit.settings import MIN_ENTITY_SIZE, PesitSettings

__all__ = [
    "NO_COMPRESSION",
    "VERSION_E",
    "ack_select_params",
    "connect_params",
    "create_params",
    "negotiate_entity",
    "negotiate_sync",
    "read_connect",
    "read_file",
    "select_params",
]

VERSION_E = 2
NO_COMPRESSION = b"\x00\x00"
ALL_ATTRIBUTES = 0xE0
ACCESS_BOTH = 2


def connect_params(settings: PesitSettings) -> Params:
    """CONNECT: ids, password (blank-padded to 8), version E, sync proposal, access both."""
    return Params.of(
        (PI.REQUESTER_ID, settings.requester_id),
        (PI.SERVER_ID, settings.server_id),
        (PI.ACCESS_CONTROL, settings.password.ljust(8) if settings.password else None),
        (PI.VERSION, VERSION_E),
        (PI.SYNC_POINTS, SyncPoints(settings.sync_interval_kb, settings.sync_window)),
        (PI.ACCESS_TYPE, ACCESS_BOTH),
    )


def read_connect(params: Params) -> ConnectionRequested:
    """A CONNECT we can consider; `PesitError` here means RCONNECT with its diagnostic."""
    if params.number(PI.CRC, 0):
        raise PesitError(Diagnostic.NEGOTIATION_FAILURE, "CRC asked (PI 1 = 1)")
    version = params.number(PI.VERSION)
    if version != VERSION_E:
        raise PesitError(Diagnostic.VERSION_NOT_SUPPORTED, f"version {version}, only E (2)")
    requester_id = params.text(PI.REQUESTER_ID)
    if requester_id is None:
        raise PesitError(Diagnostic.PARAMETER_ERROR, "CONNECT without requester id (PI 3)")
    access = params.text(PI.ACCESS_CONTROL, "").ljust(16)
    return ConnectionRequested(
        requester_id=requester_id.rstrip(),
        server_id=params.text(PI.SERVER_ID, "").rstrip(),
        password=access[:8].rstrip(),
        access_type=params.number(PI.ACCESS_TYPE, ACCESS_BOTH),
    )


def negotiate_sync(proposed: SyncPoints | None, ours: SyncPoints) -> SyncPoints:
    """The smaller interval and window win; no PI 7 at all means no sync points."""
    if proposed is None:
        return SyncPoints(0, 0)
    return SyncPoints(
        min(proposed.interval_kb, ours.interval_kb), min(proposed.window, ours.window)
    )


def negotiate_entity(proposed: int | None, ours: int) -> int:
    """The smaller PI 25; one too small to carry data is a failed negotiation (2/200)."""
    size = ours if proposed is None else min(proposed, ours)
    if size < MIN_ENTITY_SIZE:
        raise PesitError(Diagnostic.CHARACTERISTICS_INSUFFICIENT, f"entity size {size}")
    return size


def _file_id(file: FileInfo) -> Params:
    return Params.of((PI.FILE_TYPE, 0), (PI.FILE_NAME, file.file_name or None))


def _logical(file: FileInfo) -> Params:
    return Params.of(
        (PI.ARTICLE_FORMAT, file.article_format),
        (PI.ARTICLE_LENGTH, file.article_size),
        (PI.LABEL, file.label),
    )


def _physical(file: FileInfo) -> Params:
    return Params.of((PI.ALLOCATION_UNIT, 0), (PI.MAX_SIZE, file.max_size_kb))


def _historical(file: FileInfo) -> Params | None:
    return Params.of((PI.CREATION_DATE, file.created)) if file.created else None


def create_params(file: FileInfo) -> Params:
    return Params.of(
        (PI.FILE_ID, _file_id(file)),
        (PI.TRANSFER_ID, file.transfer_id),
        (PI.RESTART, 1 if file.restart else None),
        (PI.DATA_CODE, file.data_code),
        (PI.PRIORITY, file.priority),
        (PI.MAX_ENTITY_SIZE, file.entity_size),
        (PI.LOGICAL_ATTRIBUTES, _logical(file)),
        (PI.PHYSICAL_ATTRIBUTES, _physical(file)),
        (PI.HISTORICAL_ATTRIBUTES, _historical(file)),
    )


def select_params(file: FileInfo) -> Params:
    return Params.of(
        (PI.FILE_ID, _file_id(file)),
        (PI.TRANSFER_ID, file.transfer_id),
        (PI.ATTRIBUTES_ASKED, ALL_ATTRIBUTES),
        (PI.RESTART, 1 if file.restart else None),
        (PI.PRIORITY, file.priority),
        (PI.MAX_ENTITY_SIZE, file.entity_size),
    )


def ack_select_params(file: FileInfo) -> Params:
    return Params.of(
        (PI.DIAGNOSTIC, Diagnostic.SUCCESS.code),
        (PI.FILE_ID, _file_id(file)),
        (PI.TRANSFER_ID, file.transfer_id),
        (PI.DATA_CODE, file.data_code),
        (PI.MAX_ENTITY_SIZE, file.entity_size),
        (PI.LOGICAL_ATTRIBUTES, _logical(file)),
        (PI.PHYSICAL_ATTRIBUTES, _physical(file)),
        (PI.HISTORICAL_ATTRIBUTES, _historical(file)),
    )


def read_file(params: Params) -> FileInfo:
    """CREATE, SELECT or ACK(SELECT) as a `FileInfo`; absent parameters read as defaults."""
    logical = params.group(PI.LOGICAL_ATTRIBUTES)
    historical = params.group(PI.HISTORICAL_ATTRIBUTES)
    return FileInfo(
        file_name=params.group(PI.FILE_ID).text(PI.FILE_NAME, "").rstrip(),
        transfer_id=params.number(PI.TRANSFER_ID, 0),
        restart=params.number(PI.RESTART, 0) == 1,
        data_code=params.number(PI.DATA_CODE, 2),
        priority=params.number(PI.PRIORITY, 1),
        entity_size=params.number(PI.MAX_ENTITY_SIZE, 0),
        article_format=logical.number(PI.ARTICLE_FORMAT, 0x80),
        article_size=logical.number(PI.ARTICLE_LENGTH, 0),
        max_size_kb=params.group(PI.PHYSICAL_ATTRIBUTES).number(PI.MAX_SIZE, 0),
        created=historical.text(PI.CREATION_DATE),
        label=logical.text(PI.LABEL),
    )
