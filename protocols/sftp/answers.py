"""The SFTP answers of the listener: refusal -> status, and the attributes of virtual entries.

Errors carry their wire answer (architecture.md rule 3): a path refusal or an inbox refusal
becomes the asyncssh `SFTPError` subclass that *is* the status, with a message naming the
reason (`too-large: ...`, `not-subscribed: ...`), which OpenSSH and paramiko show their users.
"""

from __future__ import annotations

import stat as statmod

import asyncssh

from protocols.ports import RefusalKind, TransferRefused
from protocols.sftp.paths import PathRefused, Refusal

DENIED_KINDS = {
    RefusalKind.UNKNOWN_CODE,
    RefusalKind.NOT_SUBSCRIBED,
    RefusalKind.CONNECTION_CLOSED,
}


def sftp_error(exc: PathRefused | TransferRefused) -> asyncssh.SFTPError:
    """The SFTP status a refusal is answered with; the message names the reason."""
    if isinstance(exc, TransferRefused):
        text = f"{exc.kind.value}: {exc.reason}"
        if exc.kind in DENIED_KINDS:
            return asyncssh.SFTPPermissionDenied(text)
        return asyncssh.SFTPFailure(text)
    if exc.refusal is Refusal.NO_SUCH_FILE:
        return asyncssh.SFTPNoSuchFile(exc.reason)
    if exc.refusal is Refusal.PERMISSION_DENIED:
        return asyncssh.SFTPPermissionDenied(exc.reason)
    if exc.refusal is Refusal.INVALID_NAME:
        return asyncssh.SFTPInvalidFilename(f"invalid-name: {exc.reason}")
    return asyncssh.SFTPFailure(exc.reason)


def entry_attrs(
    *, directory: bool, writable: bool = False, size: int = 0, mtime: float = 0.0
) -> asyncssh.SFTPAttrs:
    """Attributes of a virtual entry: a directory or a read-only / write-only file."""
    mode = (statmod.S_IFDIR | (0o700 if writable else 0o500)) if directory else statmod.S_IFREG
    if not directory:
        mode |= 0o600 if writable else 0o400
    stamp = int(mtime)
    return asyncssh.SFTPAttrs(
        type=asyncssh.FILEXFER_TYPE_DIRECTORY if directory else asyncssh.FILEXFER_TYPE_REGULAR,
        size=size,
        permissions=mode,
        atime=stamp,
        mtime=stamp,
        nlink=1,
    )
