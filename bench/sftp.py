"""SFTP deposit throughput: the gateway (durable, routed) beside bare asyncssh and OpenSSH sshd.

    python bench/sftp.py [--large-mb 100] [--small-count 1000] [--small-size 20480]
                         [--sessions 200] [--rounds 5] [--dir /target/disk]

The client is always OpenSSH `sftp -b` with aes128-gcm@openssh.com, on the same disk for every
server. Four servers, interleaved round by round so that load noise hits all alike; after each
upload the page cache is synced (untimed), so that no server's turn pays for the writeback of
what the one before left unsynced:

  gateway     the listener over the real inbox port: CLOSE is answered once the payload and its
              directory are fsynced and the record (accepted + routed events) is committed
  bare        asyncssh's own `SFTPServer` writing to disk, no fsync at all
  bare+fsync  the same, answering CLOSE only after fsync of the file and of its directory:
              the price of durability alone, without hashing, records or routing
  bare+spool  asyncssh's `SFTPServer` handing each upload to the store's own spool (hashed and
              written off the loop, synced every 16 MB, placed in its sha256 bucket and fsynced
              at CLOSE), without jail, routing or database: the price of a durable,
              content-addressed inbox alone
  sshd        OpenSSH `sshd` with `internal-sftp` in a chroot, no fsync (needs root)

Scenarios: one large file; many small files in one session; one file per session. Each cell is
the median of the rounds. The client's input files are written and synced to disk before a
round starts, so that no server pays for flushing them. Goals (against `bare`, as set):
large-file throughput >= 0.8x, small-file accepts >= 0.5x.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
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

if not __package__:  # run as `python bench/sftp.py`: its sibling module must be importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sftp_servers import (
    REPO,
    SFTP,
    BareServer,
    GatewayServer,
    OpenSshd,
    start_sshd,
)
from gateway.logging import configure

SERVERS = ("gateway", "bare", "bare+fsync", "bare+spool", "sshd")


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


# --- scenarios: prepare the input (untimed), then upload it (timed) ------------------------------

Upload = Callable[[Target], Awaitable[float]]


def large(key: Path, work: Path, size: int) -> Upload:
    path = make_large(work, size)

    async def upload(target: Target) -> float:
        seconds = await sftp_batch(target, key, [f"put {path} {target.prefix}/{target.name}.xml"])
        return size / seconds / 1e6

    return upload


def small(key: Path, work: Path, count: int, size: int) -> Upload:
    files = make_files(work, count, size)

    async def upload(target: Target) -> float:
        commands = [f"put {f} {target.prefix}/{f.name}" for f in files]
        return count / await sftp_batch(target, key, commands)

    return upload


def sessions(key: Path, work: Path, count: int, size: int) -> Upload:
    files = make_files(work, count, size)

    async def upload(target: Target) -> float:
        gate = asyncio.Semaphore(8)

        async def one(path: Path) -> None:
            async with gate:
                await sftp_batch(target, key, [f"put {path} {target.prefix}/{path.name}"])

        started = time.perf_counter()
        await asyncio.gather(*(one(f) for f in files))
        return count / (time.perf_counter() - started)

    return upload


Prepare = Callable[[Path], Upload]  # fresh input in a directory: the gateway refuses duplicates


# --- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: the median rate per server (None when it cannot run here)."""

    scenario: str
    unit: str
    rates: dict[str, list[float]]  # every round, per server
    goal: float

    def median(self, server: str) -> float | None:
        found = self.rates.get(server)
        return statistics.median(found) if found else None

    @property
    def gateway(self) -> float:
        return self.median("gateway") or 0.0

    @property
    def bare(self) -> float:
        return self.median("bare") or 0.0

    def ratio(self, baseline: str = "bare") -> float:
        base = self.median(baseline)
        return self.gateway / base if base else 0.0

    def paired(self, baseline: str = "bare") -> list[float]:
        """Each round's gateway rate over the baseline's in that same round."""
        pairs = zip(self.rates.get("gateway", []), self.rates.get(baseline, []), strict=False)
        return [gw / base for gw, base in pairs if base]


async def _measure(
    prepare: Prepare, targets: dict[str, Target], *, rounds: int, inputs: Path
) -> dict[str, list[float]]:
    """Each round: fresh input, synced to disk, then every server in turn (order rotating)."""
    rates: dict[str, list[float]] = {name: [] for name in targets}
    names = list(targets)
    for index in range(rounds):
        uploads = {name: prepare(inputs / name) for name in names}
        os.sync()  # the client's input must not be flushed on a durable server's time
        order = names[index % len(names) :] + names[: index % len(names)]
        try:
            for name in order:
                rates[name].append(await uploads[name](targets[name]))
                # Untimed: what a server left unsynced (bare, sshd) is written out now, not
                # during the next server's turn, where it would slow that server's fsyncs.
                await asyncio.to_thread(os.sync)
        finally:
            shutil.rmtree(inputs, ignore_errors=True)
    return rates


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


@dataclass
class _Servers:
    gateway: GatewayServer
    bare: BareServer
    durable: BareServer
    spool: BareServer
    sshd: OpenSshd | None

    def targets(self) -> dict[str, Target]:
        found = {
            "gateway": Target("gateway", self.gateway.port, "bench", "/out/FSO1100A"),
            "bare": Target("bare", self.bare.port, "bench", "/out/FSO1100A"),
            "bare+fsync": Target("bare+fsync", self.durable.port, "bench", "/out/FSO1100A"),
            "bare+spool": Target("bare+spool", self.spool.port, "bench", "/out/FSO1100A"),
        }
        if self.sshd is not None:
            found["sshd"] = Target("sshd", self.sshd.port, "root", "/jail/out/FSO1100A")
        return found

    async def stop(self) -> None:
        await self.gateway.stop()
        await self.bare.stop()
        await self.durable.stop()
        await self.spool.stop()
        if self.sshd is not None:
            self.sshd.stop()


async def _start(work: Path, client: asyncssh.SSHKey) -> _Servers:
    line = client.export_public_key("openssh").decode().strip()
    for name in ("bare", "durable"):
        (work / name / "out" / "FSO1100A").mkdir(parents=True)
    (work / "spool").mkdir()
    servers = _Servers(
        GatewayServer(work / "gateway", client),
        BareServer(work / "bare", [line]),
        BareServer(work / "durable", [line], mode="fsync"),
        BareServer(work / "spool", [line], mode="spool"),
        None,
    )
    await servers.gateway.start()
    await servers.bare.start()
    await servers.durable.start()
    await servers.spool.start()
    with suppress(RuntimeError):
        servers.sshd = start_sshd([line])
        (servers.sshd.jail / "out" / "FSO1100A").mkdir(parents=True)
    return servers


async def _run(
    work: Path, *, large_mb: int, small_count: int, small_size: int, count: int, rounds: int
) -> list[Row]:
    client = asyncssh.generate_private_key("ssh-ed25519")
    key = work / "client_key"
    key.write_bytes(client.export_private_key("openssh"))
    key.chmod(0o600)
    scenarios: list[tuple[str, str, float, Prepare]] = [
        (f"1 x {large_mb} MB", "MB/s", 0.8, lambda d: large(key, d, large_mb << 20)),
        (
            f"{small_count} x {small_size // 1024} KB, 1 session",
            "files/s",
            0.5,
            lambda d: small(key, d, small_count, small_size),
        ),
        (
            f"{count} sessions x 1 file",
            "files/s",
            0.5,
            lambda d: sessions(key, d, count, small_size),
        ),
    ]
    servers = await _start(work, client)
    rows: list[Row] = []
    try:
        for name, unit, goal, prepare in scenarios:
            rates = await _measure(
                prepare, servers.targets(), rounds=rounds, inputs=work / "inputs"
            )
            rows.append(Row(name, unit, rates, goal))
        expected = rounds * (1 + small_count + count)
        accepted = await servers.gateway.accepted()
        if accepted != expected:
            raise RuntimeError(f"gateway recorded {accepted} messages, expected {expected}")
    finally:
        await servers.stop()
    return rows


def _cell(value: float | None) -> str:
    return f"{value:10.1f}" if value is not None else f"{'n/a':>10}"


def _paired(ratios: Sequence[float]) -> str:
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def render(rows: Sequence[Row], *, rounds: int | None = None) -> str:
    """Medians per server, the gateway's ratio to bare (the goal), to bare+fsync and to
    bare+spool, and bare+spool's own ratio to bare (what the durable inbox alone costs)."""
    names = " ".join(f"{name:>10}" for name in SERVERS)
    head = (
        f"{'scenario':<26} {'unit':<7} {names} {'gw/bare':>8} {'gw/b+fs':>8} {'gw/b+sp':>8}"
        f" {'b+sp/bare':>9}"
        f" {'paired gw/bare (range)':>22}  goal (gw/bare)"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = " ".join(_cell(row.median(name)) for name in SERVERS)
        verdict = "ok" if row.ratio() >= row.goal else "MISSED"
        bare, spooled = row.median("bare"), row.median("bare+spool")
        spool = spooled / bare if bare and spooled else 0.0
        lines.append(
            f"{row.scenario:<26} {row.unit:<7} {cells} {row.ratio():8.2f} "
            f"{row.ratio('bare+fsync'):8.2f} {row.ratio('bare+spool'):8.2f} {spool:9.2f}"
            f" {_paired(row.paired()):>22}  >= {row.goal} {verdict}"
        )
    shown = f"median of {rounds} rounds" if rounds else "medians"
    lines.append(
        f"({shown}; gateway, bare+fsync and bare+spool fsync file + directory before answering"
        " CLOSE, bare and sshd do not; paired: each round's gateway over that round's bare)"
    )
    return "\n".join(lines)


def render_rounds(rows: Sequence[Row]) -> str:
    """Every round's rate, so that the spread behind each median is visible."""
    lines = []
    for row in rows:
        for name, values in row.rates.items():
            shown = " ".join(f"{v:.1f}" for v in values)
            lines.append(f"  {row.scenario:<26} {name:<10} {shown}")
    return "\n".join(lines)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--large-mb", type=int, default=100)
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--small-size", type=int, default=20 * 1024)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    configure(level="warning", stream=sys.stderr)
    before = _load()
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
    print(render(rows, rounds=args.rounds))
    print(f"load average before: {before}, after: {_load()} ({os.cpu_count()} CPUs)")
    print("rounds:")
    print(render_rounds(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
