"""The servers bench/sftp.py measures: the gateway, bare asyncssh (as is, with fsync, with the
store's spool), sshd.

Every one of them receives the same OpenSSH client's uploads into `/out/FSO1100A`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import asyncssh

from gateway.config import Config
from gateway.config_load import load
from gateway.config_rules import catalogue_for
from gateway.connections import synchronise
from gateway.credentials import load_credentials
from gateway.inbox import StoreInbox
from gateway.intake import GatewayInbox
from gateway.model import Direction
from gateway.offload import run_blocking
from gateway.router import Router
from gateway.sandbox_pki import ensure_sandbox_certificates
from gateway.store import Submission
from gateway.store.payloads import PayloadDir
from gateway.store.spool import Spooler
from gateway.store.sqlite import SQLiteStore, open_store
from gateway.wakeups import Wakeups
from protocols.sftp.keys import wire
from protocols.sftp.paths import Jail
from protocols.sftp.ports import Account, EmptyMailbox, Limits, ListenerParams, NullObserver
from protocols.sftp.ranges import Sequencer
from protocols.sftp.server import SftpListener

SSHD = Path("/usr/sbin/sshd")
SFTP = shutil.which("sftp") or "/usr/bin/sftp"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _safe_chain(path: Path) -> bool:
    """sshd's rule for a chroot: every component root-owned, not group/world writable."""
    for part in [path, *path.parents]:
        info = part.stat()
        if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
    return True


def chroot_base() -> Path | None:
    """A directory where sshd accepts a chroot, or None (not root, or no safe place)."""
    if os.geteuid() != 0 or not SSHD.exists():
        return None
    candidates = [REPO / "var", Path("/run"), Path("/var/lib")]
    for base in candidates:
        with suppress(OSError):
            base.mkdir(mode=0o755, exist_ok=True)
            if _safe_chain(base):
                return base
    return None


@dataclass
class OpenSshd:
    """A private sshd: internal-sftp only, one user (root), keys from one file."""

    root: Path  # chroot (root-owned); `jail` holds the writable tree
    port: int
    process: subprocess.Popen[bytes]
    host_key: asyncssh.SSHKey

    @property
    def jail(self) -> Path:
        return self.root / "jail"

    def stop(self) -> None:
        self.process.terminate()
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)


def start_sshd(authorized: list[str], *, host_key_type: str = "ssh-ed25519") -> OpenSshd:
    """Start sshd on a free loopback port; raises RuntimeError when it cannot run here."""
    base = chroot_base()
    if base is None:
        raise RuntimeError("sshd needs root and a root-owned chroot path")
    root = Path(tempfile.mkdtemp(prefix="raccord-sshd-", dir=base))
    root.chmod(0o755)
    etc = root / "etc"
    etc.mkdir(mode=0o700)
    jail = root / "jail"
    jail.mkdir(mode=0o755)
    key = asyncssh.generate_private_key(host_key_type)
    (etc / "host_key").write_bytes(key.export_private_key("openssh"))
    (etc / "host_key").chmod(0o600)
    (etc / "authorized_keys").write_text("\n".join(authorized) + "\n")
    port = free_port()
    config = etc / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress 127.0.0.1:{port}",
                f"HostKey {etc / 'host_key'}",
                f"AuthorizedKeysFile {etc / 'authorized_keys'}",
                "PidFile none",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "AllowUsers root",
                "Subsystem sftp internal-sftp",
                "ForceCommand internal-sftp",
                f"ChrootDirectory {root}",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "LogLevel ERROR",
            ]
        )
        + "\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    process = subprocess.Popen(
        [str(SSHD), "-f", str(config), "-D", "-e"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = OpenSshd(root, port, process, key)
    _wait_listening(server)
    return server


def _wait_listening(server: OpenSshd) -> None:
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
    while dt.datetime.now(dt.UTC) < deadline:
        if server.process.poll() is not None:
            err = server.process.stderr.read().decode() if server.process.stderr else ""
            server.stop()
            raise RuntimeError(f"sshd exited: {err.strip()}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", server.port), 0.2):
            return
        time.sleep(0.02)
    server.stop()
    raise RuntimeError("sshd did not start listening")


class DurableSFTPServer(asyncssh.SFTPServer):
    """asyncssh's SFTPServer answering an upload's CLOSE only once file and directory are fsynced.

    The price of durability without anything else (no hashing, no database, no routing): the
    fsyncs run in the loop's default executor, as the gateway's run in its offload pool.
    """

    async def close(self, file_obj: object) -> None:
        handle = cast(BinaryIO, file_obj)
        if not handle.writable():
            handle.close()
            return
        await asyncio.get_running_loop().run_in_executor(None, _close_durably, handle)


def _close_durably(handle: BinaryIO) -> None:
    try:
        handle.flush()
        os.fsync(handle.fileno())
    finally:
        handle.close()
    fd = os.open(os.path.dirname(os.fsencode(handle.name)) or b".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Spooling:
    """One upload into the store's spool: in-order chunks, then a sealed temp file."""

    def __init__(self, spooler: Spooler) -> None:
        self.spooler = spooler
        self.sequencer = Sequencer()


class SpoolingSFTPServer(asyncssh.SFTPServer):
    """asyncssh's SFTPServer handing each upload to the store's own spool and placement, and
    nothing else: hashed and written off the loop while it streams, synced in the background
    every 16 MB, then at CLOSE linked (or renamed) into its sha256 bucket and fsynced with it.
    No jail, sniffing, routing or database: what the durable, content-addressed inbox costs
    alone."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], *, payloads: PayloadDir) -> None:
        super().__init__(chan)
        self._payloads = payloads

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        del path, pflags, attrs
        return _Spooling(Spooler(self._payloads, _SPOOLED, None))

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        upload = cast(_Spooling, file_obj)
        for chunk in upload.sequencer.feed(offset, data):
            await upload.spooler.feed(chunk)
        return len(data)

    async def close(self, file_obj: object) -> None:
        spooler = cast(_Spooling, file_obj).spooler
        await spooler.drain_all()
        await run_blocking(self._place, spooler)

    def _place(self, spooler: Spooler) -> None:
        spooled = spooler.finish()
        self._payloads.place(spooled, spooler.file)
        self._payloads.unpin(spooled.sha256)


_SPOOLED = Submission(
    source="bench", direction=Direction.EMISSION, interface_code="FSO1100A", protocol="sftp"
)


class BareServer:
    """asyncssh's own SFTP server writing to disk: the baseline without routing or records.

    `mode`: "bare", asyncssh's `SFTPServer` as is (no fsync: the bytes may sit in the page
    cache when CLOSE is answered); "fsync", `DurableSFTPServer`; "spool",
    `SpoolingSFTPServer` (its payloads under `root/payloads`).
    """

    def __init__(self, root: Path, authorized: list[str], *, mode: str = "bare") -> None:
        self.root = root
        self._authorized = asyncssh.import_authorized_keys("\n".join(authorized) + "\n")
        self._server: asyncssh.SSHAcceptor | None = None
        self._mode = mode
        self._payloads: PayloadDir | None = None
        self.port = 0

    def _factory(self) -> Callable[[asyncssh.SSHServerChannel[bytes]], asyncssh.SFTPServer]:
        root = bytes(self.root)
        if self._mode == "spool":
            payloads = self._payloads = PayloadDir(self.root)
            payloads.prepare()
            return lambda chan: SpoolingSFTPServer(chan, payloads=payloads)
        factory = DurableSFTPServer if self._mode == "fsync" else asyncssh.SFTPServer
        return lambda chan: factory(chan, chroot=root)

    async def start(self) -> None:
        key = asyncssh.generate_private_key("ssh-ed25519")
        self._server = await asyncssh.create_server(
            None,
            "127.0.0.1",
            0,
            server_host_keys=[key],
            authorized_client_keys=self._authorized,
            sftp_factory=self._factory(),
            config=None,
        )
        self.port = int(self._server.get_port())

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._payloads is not None:
            self._payloads.close()


# --- the gateway side --------------------------------------------------------------------------


class GatewayServer:
    """The gateway's listener over a real store and inbox port, from the sandbox config."""

    def __init__(self, workdir: Path, authorized: asyncssh.SSHKey) -> None:
        self._workdir = workdir
        self._key = authorized
        self._store: SQLiteStore | None = None
        self._listener: SftpListener | None = None
        self.port = 0

    async def start(self) -> None:
        config = _sandbox_config(self._workdir)
        self._store = await open_store(self._workdir / "data")
        creds, problems = load_credentials(config, now=_now())
        if problems:
            raise RuntimeError(f"sandbox credentials: {problems}")
        registry = await synchronise(config, self._store, actor="bench", credentials=creds)
        catalogue = catalogue_for(config)
        router = Router(
            store=self._store, registry=registry, catalogue=catalogue, wakeups=Wakeups(), clock=_now
        )
        port = GatewayInbox(
            inbox=StoreInbox(self._store, known_codes=catalogue),
            store=self._store,
            registry=registry,
            catalogue=catalogue,
            router=router,
            clock=_now,
        )
        account = Account(
            name="bench",
            keys=frozenset({wire(self._key)}),
            jail=Jail(deposit_codes=frozenset({"FSO1100A"}), collect_codes=frozenset()),
            direction="emission",
            environment="qual",
            max_sessions=1000,
        )
        params = ListenerParams(
            host="127.0.0.1",
            port=0,
            host_key=self._workdir / "host_key",
            accounts=(account,),
            limits=Limits(max_sessions=1000, max_file_size=4 << 30),
        )
        self._listener = SftpListener(
            params, inbox=port, mailbox=EmptyMailbox(), observer=NullObserver()
        )
        await self._listener.start()
        self.port = self._listener.port

    async def accepted(self) -> int:
        assert self._store is not None
        return len(await self._store.list_messages(direction=Direction.EMISSION, limit=10_000))

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop(timeout=5)
        if self._store is not None:
            await self._store.close()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sandbox_config(workdir: Path) -> Config:
    target = workdir / "config" / "sandbox" / "raccord.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config" / "sandbox" / "raccord.yaml", target)
    env = {"RACCORD_ADMIN_PORT": "0"}
    ensure_sandbox_certificates(load(target, check_files=False, env=env), now=_now())
    return load(target, env=env)
