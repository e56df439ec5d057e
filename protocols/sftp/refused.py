"""The SFTP operations a jail never performs, each refused with the status that says why.

Kept apart from the session so that what a client *can* do reads on its own: directories are
fixed by the interface codes, links and attribute changes have no meaning in a virtual jail,
and an upload becomes durable when it is closed, not when the client asks for an fsync.
"""

from __future__ import annotations

from typing import NoReturn

import asyncssh


class RefusedOperations(asyncssh.SFTPServer):
    """asyncssh hooks that touch no state: refused outright, never reaching the disk."""

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPPermissionDenied("directories are fixed by the interface codes")

    def rmdir(self, path: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("directories are fixed by the interface codes")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("symbolic links are not allowed")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed")

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPPermissionDenied("attributes cannot be changed")

    def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPPermissionDenied("attributes cannot be changed")

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: object) -> object:
        raise asyncssh.SFTPOpUnsupported("SFTP version 3 only")

    def statvfs(self, path: bytes) -> NoReturn:
        raise asyncssh.SFTPOpUnsupported("statvfs is not offered")

    def fstatvfs(self, file_obj: object) -> NoReturn:
        raise asyncssh.SFTPOpUnsupported("statvfs is not offered")

    def fsync(self, file_obj: object) -> None:
        raise asyncssh.SFTPOpUnsupported("uploads become durable when they are closed")
