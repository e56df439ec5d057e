"""A real gateway inbox (sandbox config + SQLite store), SSH keys, and the OpenSSH/paramiko clients.

Everything here is real: the sandbox configuration with its generated certificates, a store on
disk, the gateway's own inbox port, router and registry, keys written as files, and the
`sftp`/`sshd` binaries of the machine.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import yaml

from gateway.config import Config
from gateway.config_load import load
from gateway.config_rules import catalogue_for
from gateway.connections import ConnectionRegistry, synchronise
from gateway.credentials import LoadedCredentials, load_credentials
from gateway.inbox import StoreInbox
from gateway.intake import GatewayInbox
from gateway.plug_sftp import MetricsObserver, StoreMailbox
from gateway.router import Router
from gateway.services import GatewayContext
from gateway.store.sqlite import SQLiteStore, open_store
from gateway.wakeups import Wakeups
from protocols.sftp.keys import wire
from protocols.sftp.paths import Jail
from protocols.sftp.ports import Account, Limits, ListenerParams
from protocols.sftp.server import SftpListener

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
SFTP = shutil.which("sftp") or "/usr/bin/sftp"
SSHD = "/usr/sbin/sshd"
QUAL_EMISSION = frozenset({"FSO1100A", "FSO1106A", "FSO1110A", "FSO1117A", "XGB0002A"})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class GatewayEnv:
    """The gateway pieces an SFTP listener plugs into, over a real store."""

    config: Config
    store: SQLiteStore
    registry: ConnectionRegistry
    credentials: LoadedCredentials
    port: GatewayInbox
    known: frozenset[str]
    router: Router
    wakeups: Wakeups
    inbox: StoreInbox

    def context(self) -> GatewayContext:
        return GatewayContext(
            config=self.config,
            registry=self.registry,
            catalogue=catalogue_for(self.config),
            credentials=self.credentials,
            store=self.store,
            inbox=self.inbox,
            inbox_port=self.port,
            router=self.router,
            wakeups=self.wakeups,
            clock=utcnow,
        )


def edited(sandbox: Path, target: Path, edit: Callable[[Any], object]) -> Path:
    """A copy of the sandbox YAML (same folder, so relative paths still work) after `edit`."""
    data = yaml.safe_load(sandbox.read_text())
    edit(data)
    path = sandbox.parent / target.name
    path.write_text(yaml.safe_dump(data))
    return path


def sftp_sheet(data: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in data["connections"] if c["protocol"] == "sftp")
    return found


def loaded(sandbox: Path) -> tuple[Config, LoadedCredentials]:
    """The sandbox configuration and its checked credentials (slow: load once per session)."""
    config = load(sandbox, env={"RACCORD_ADMIN_PORT": "0"})
    credentials, problems = load_credentials(config, now=utcnow())
    assert not problems, problems
    return config, credentials


async def gateway_env(
    sandbox: Path, data_dir: Path, *, preloaded: tuple[Config, LoadedCredentials] | None = None
) -> GatewayEnv:
    """Build what `Daemon._build_context` builds, over a store in `data_dir`."""
    config, credentials = preloaded or loaded(sandbox)
    store = await open_store(data_dir)
    registry = await synchronise(config, store, actor="test", credentials=credentials)
    catalogue = catalogue_for(config)
    inbox = StoreInbox(store, known_codes=catalogue)
    wakeups = Wakeups()
    router = Router(
        store=store, registry=registry, catalogue=catalogue, wakeups=wakeups, clock=utcnow
    )
    port = GatewayInbox(
        inbox=inbox,
        store=store,
        registry=registry,
        catalogue=catalogue,
        router=router,
        clock=utcnow,
    )
    known = frozenset(spec.code for spec in catalogue)
    return GatewayEnv(config, store, registry, credentials, port, known, router, wakeups, inbox)


@dataclass(frozen=True)
class KeyFiles:
    """A client key pair on disk, in OpenSSH format, as `sftp -i` and paramiko read it."""

    private: Path
    public_line: str
    key: asyncssh.SSHKey

    @property
    def wire(self) -> bytes:
        return wire(self.key)


def make_key(directory: Path, name: str, algorithm: str = "ssh-ed25519") -> KeyFiles:
    directory.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key(algorithm, comment=name)
    private = directory / name
    private.write_bytes(key.export_private_key("openssh"))
    private.chmod(0o600)
    public_line = key.export_public_key("openssh").decode().strip()
    (directory / f"{name}.pub").write_text(public_line + "\n")
    return KeyFiles(private, public_line, key)


@dataclass
class Accounts:
    """The two kinds of account the tests use, with their keys."""

    backoffice: KeyFiles
    aife: KeyFiles
    stranger: KeyFiles

    def build(self, *, max_sessions: int = 10, archive: bool = False) -> tuple[Account, ...]:
        return (
            Account(
                name="backoffice",
                keys=frozenset({self.backoffice.wire}),
                jail=Jail(
                    deposit_codes=QUAL_EMISSION,
                    collect_codes=frozenset({"FEN1200A", "CSO1100A", "XGB0001A"}),
                    archive_dir="archive" if archive else None,
                ),
                direction="emission",
                environment="qual",
                max_sessions=max_sessions,
            ),
            Account(
                name="aife-g2b-qual",
                keys=frozenset({self.aife.wire}),
                jail=Jail(
                    deposit_codes=frozenset({"XGB0001A", "XGB0003A"}),
                    collect_codes=frozenset(),
                ),
                direction="reception",
                connection="g2b-qual-sftp",
                max_sessions=max_sessions,
            ),
        )


COLLECT = {"backoffice": ("b2g-qual-as2", "g2b-qual-sftp")}


async def start_listener(
    env: GatewayEnv,
    accounts: Sequence[Account],
    host_key: Path,
    *,
    limits: Limits | None = None,
    password_login: bool = False,
) -> SftpListener:
    params = ListenerParams(
        host="127.0.0.1",
        port=0,
        host_key=host_key,
        accounts=tuple(accounts),
        limits=limits or Limits(),
        password_login=password_login,
    )
    mailbox = StoreMailbox(env.store, collect=COLLECT, known=env.known)
    listener = SftpListener(params, inbox=env.port, mailbox=mailbox, observer=MetricsObserver())
    await listener.start()
    return listener


async def quiet(listener: SftpListener) -> None:
    """Wait until no upload is in flight and every abort has cleaned up after itself."""
    for _ in range(500):
        if not listener.busy:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the listener is still busy")


def invoice(tag: str | None = None, *, padding: int = 0) -> bytes:
    """A valid UBL invoice (FSO1100A) made unique by `tag`, optionally padded to be large."""
    text = (FIXTURES / "ubl-invoice.xml").read_bytes()
    unique = (tag or uuid.uuid4().hex).encode()
    text = text.replace(b"RACCORD-2026-0001", b"RACCORD-" + unique, 1)
    if padding:
        text += b"<!--" + b"x" * padding + b"-->\n"
    return text


@dataclass
class Batch:
    """The result of one `sftp -b` run."""

    returncode: int
    stdout: str
    stderr: str
    commands: list[str] = field(default_factory=list)


def ssh_options(port: int, key: Path, known_hosts: Path | None = None) -> list[str]:
    return [
        "-P",
        str(port),
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        f"UserKnownHostsFile={known_hosts or os.devnull}",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "Ciphers=aes128-gcm@openssh.com",
        "-F",
        os.devnull,
    ]


async def openssh_batch(
    port: int, user: str, key: Path, commands: Sequence[str], *, timeout: float = 30
) -> Batch:
    """Run OpenSSH `sftp -b -` with `commands` (a `-` prefix lets one fail, as in sftp)."""
    process = await asyncio.create_subprocess_exec(
        SFTP,
        *ssh_options(port, key),
        "-b",
        "-",
        f"{user}@127.0.0.1",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    script = ("\n".join(commands) + "\n").encode()
    out, err = await asyncio.wait_for(process.communicate(script), timeout)
    assert process.returncode is not None
    return Batch(process.returncode, out.decode(), err.decode(), list(commands))
