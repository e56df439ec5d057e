"""SFTP deposit throughput: the gateway (durable, routed) beside bare asyncssh and OpenSSH sshd.

    python bench/sftp.py [--large-mb 100] [--small-count 1000] [--small-size 20480]
                         [--sessions 200] [--rounds 2] [--dir /target/disk]

The client is always OpenSSH `sftp -b` with aes128-gcm@openssh.com. Three servers, same run:
the gateway's listener (each upload streamed into the real inbox port: fsynced payload, SQLite
record, routing, answered only then), a bare asyncssh server writing to disk (asyncssh's own
`SFTPServer`, no fsync), and OpenSSH `sshd` with `internal-sftp` in a chroot (reference; needs
root). Scenarios: one large file; many small files in one session; one file per session.
Goals: large-file throughput >= 0.8x bare; small-file durable accepts >= 0.5x bare.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from gateway.config import Config
from gateway.config_load import load
from gateway.config_rules import catalogue_for
from gateway.connections import synchronise
from gateway.credentials import load_credentials
from gateway.inbox import StoreInbox
from gateway.intake import GatewayInbox
from gateway.logging import configure
from gateway.model import Direction
from gateway.router import Router
from gateway.sandbox_pki import ensure_sandbox_certificates
from gateway.store.sqlite import SQLiteStore, open_store
from gateway.wakeups import Wakeups
from protocols.sftp.keys import wire
from protocols.sftp.paths import Jail
from protocols.sftp.ports import Account, EmptyMailbox, Limits, ListenerParams, NullObserver
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


class BareServer:
    """asyncssh's own SFTP server writing to disk: the baseline without durability or routing."""

    def __init__(self, root: Path, authorized: list[str]) -> None:
        self.root = root
        self._authorized = asyncssh.import_authorized_keys("\n".join(authorized) + "\n")
        self._server: asyncssh.SSHAcceptor | None = None
        self.port = 0

    async def start(self) -> None:
        key = asyncssh.generate_private_key("ssh-ed25519")
        root = bytes(self.root)
        self._server = await asyncssh.create_server(
            None,
            "127.0.0.1",
            0,
            server_host_keys=[key],
            authorized_client_keys=self._authorized,
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root),
            config=None,
        )
        self.port = int(self._server.get_port())

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


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


# --- the client and the scenarios ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    port: int
    user: str
    prefix: str  # remote directory receiving the files


async def sftp_batch(target: Target, key: Path, commands: Sequence[str]) -> float:
    """Run OpenSSH `sftp -b -`; the wall-clock seconds (handshake included)."""
    options = ["-P", str(target.port), "-i", str(key), "-F", os.devnull, "-b", "-"]
    for option in (
        "IdentitiesOnly=yes",
        "BatchMode=yes",
        "StrictHostKeyChecking=no",
        f"UserKnownHostsFile={os.devnull}",
        "LogLevel=ERROR",
        "Ciphers=aes128-gcm@openssh.com",
    ):
        options += ["-o", option]
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        SFTP,
        *options,
        f"{target.user}@127.0.0.1",
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await process.communicate(("\n".join(commands) + "\n").encode())
    if process.returncode != 0:
        raise RuntimeError(f"{target.name}: sftp failed: {err.decode().strip()}")
    return time.perf_counter() - started


def make_files(directory: Path, count: int, size: int) -> list[Path]:
    """Distinct valid UBL invoices of about `size` bytes (the gateway refuses duplicates)."""
    directory.mkdir(parents=True, exist_ok=True)
    template = (REPO / "tests" / "fixtures" / "payloads" / "ubl-invoice.xml").read_bytes()
    files = []
    for _ in range(count):
        tag = uuid.uuid4().hex
        body = template.replace(b"RACCORD-2026-0001", tag.encode(), 1)
        pad = max(size - len(body) - 8, 0)
        path = directory / f"{tag}.xml"
        path.write_bytes(body + b"<!--" + b"x" * pad + b"-->\n" if pad else body)
        files.append(path)
    return files


def make_large(directory: Path, size: int) -> Path:
    [path] = make_files(directory, 1, 1024)
    with path.open("ab") as handle:
        block = b"<!--" + b"y" * ((1 << 20) - 8) + b"-->\n"
        while handle.tell() < size:
            handle.write(block)
    return path


async def large(target: Target, key: Path, work: Path, size: int) -> float:
    path = make_large(work / f"large-{target.name}-{uuid.uuid4().hex[:6]}", size)
    seconds = await sftp_batch(target, key, [f"put {path} {target.prefix}/{path.name}"])
    path.unlink()
    return size / seconds / 1e6


async def small(target: Target, key: Path, work: Path, count: int, size: int) -> float:
    files = make_files(work / f"small-{target.name}-{uuid.uuid4().hex[:6]}", count, size)
    seconds = await sftp_batch(target, key, [f"put {f} {target.prefix}/{f.name}" for f in files])
    return count / seconds


async def sessions(target: Target, key: Path, work: Path, count: int, size: int) -> float:
    files = make_files(work / f"sess-{target.name}-{uuid.uuid4().hex[:6]}", count, size)
    gate = asyncio.Semaphore(8)

    async def one(path: Path) -> None:
        async with gate:
            await sftp_batch(target, key, [f"put {path} {target.prefix}/{path.name}"])

    started = time.perf_counter()
    await asyncio.gather(*(one(f) for f in files))
    return count / (time.perf_counter() - started)


# --- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: a rate per server (None when sshd cannot run here)."""

    scenario: str
    unit: str
    gateway: float
    bare: float
    sshd: float | None
    goal: float

    @property
    def ratio(self) -> float:
        return self.gateway / self.bare if self.bare else 0.0


Scenario = Callable[[Target], Awaitable[float]]


async def _measure(scenario: Scenario, targets: dict[str, Target], rounds: int) -> dict[str, float]:
    """Best of `rounds` per server, the servers interleaved so that load noise hits all alike."""
    best: dict[str, float] = dict.fromkeys(targets, 0.0)
    for _ in range(rounds):
        for name, target in targets.items():
            best[name] = max(best[name], await scenario(target))
    return best


async def run(
    *,
    large_mb: int,
    small_count: int,
    small_size: int,
    session_count: int,
    rounds: int,
    directory: Path,
) -> list[Row]:
    """Measure every scenario on every server; everything is removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix="raccord-bench-sftp-", dir=directory))
    try:
        return await _run(
            work,
            large_mb=large_mb,
            small_count=small_count,
            small_size=small_size,
            count=session_count,
            rounds=rounds,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _run(
    work: Path, *, large_mb: int, small_count: int, small_size: int, count: int, rounds: int
) -> list[Row]:
    client = asyncssh.generate_private_key("ssh-ed25519")
    key = work / "client_key"
    key.write_bytes(client.export_private_key("openssh"))
    key.chmod(0o600)
    line = client.export_public_key("openssh").decode().strip()
    gateway = GatewayServer(work / "gateway", client)
    bare_root = work / "bare"
    (bare_root / "out" / "FSO1100A").mkdir(parents=True)
    bare = BareServer(bare_root, [line])
    await gateway.start()
    await bare.start()
    sshd: OpenSshd | None = None
    with suppress(RuntimeError):
        sshd = start_sshd([line])
        (sshd.jail / "out" / "FSO1100A").mkdir(parents=True)
    targets = {
        "gateway": Target("gateway", gateway.port, "bench", "/out/FSO1100A"),
        "bare": Target("bare", bare.port, "bench", "/out/FSO1100A"),
    }
    if sshd is not None:
        targets["sshd"] = Target("sshd", sshd.port, "root", "/jail/out/FSO1100A")
    scenarios: list[tuple[str, str, float, Scenario]] = [
        (f"1 x {large_mb} MB", "MB/s", 0.8, lambda t: large(t, key, work, large_mb << 20)),
        (
            f"{small_count} x {small_size // 1024} KB, 1 session",
            "files/s",
            0.5,
            lambda t: small(t, key, work, small_count, small_size),
        ),
        (
            f"{count} sessions x 1 file",
            "files/s",
            0.5,
            lambda t: sessions(t, key, work, count, small_size),
        ),
    ]
    rows: list[Row] = []
    try:
        for name, unit, goal, scenario in scenarios:
            rates = await _measure(scenario, targets, rounds)
            rows.append(Row(name, unit, rates["gateway"], rates["bare"], rates.get("sshd"), goal))
        expected = rounds * (1 + small_count + count)
        accepted = await gateway.accepted()
        if accepted != expected:
            raise RuntimeError(f"gateway recorded {accepted} messages, expected {expected}")
    finally:
        await gateway.stop()
        await bare.stop()
        if sshd is not None:
            sshd.stop()
    return rows


def render(rows: Sequence[Row]) -> str:
    """The table: rates per server, gateway/bare ratio and the goal it must meet."""
    head = (
        f"{'scenario':<28} {'unit':<8} {'gateway':>9} {'bare':>9} {'sshd':>9} {'gw/bare':>8}  goal"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        sshd = f"{row.sshd:9.1f}" if row.sshd is not None else f"{'n/a':>9}"
        verdict = "ok" if row.ratio >= row.goal else "MISSED"
        lines.append(
            f"{row.scenario:<28} {row.unit:<8} {row.gateway:9.1f} {row.bare:9.1f} {sshd} "
            f"{row.ratio:8.2f}  >= {row.goal} {verdict}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--large-mb", type=int, default=100)
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--small-size", type=int, default=20 * 1024)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    configure(level="warning", stream=sys.stderr)
    rows = asyncio.run(
        run(
            large_mb=args.large_mb,
            small_count=args.small_count,
            small_size=args.small_size,
            session_count=args.sessions,
            rounds=args.rounds,
            directory=args.dir,
        )
    )
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
