"""A PeSIT push over TLS on loopback beside a raw asyncio TLS copy of the same bytes.

    python bench/pesit.py [--size-mb 100] [--rounds 3] [--window 16] [--dir /target/disk]

Every measurement runs in its own child process so that its peak RSS is its own. Rows:

* raw: the file streamed through an asyncio TLS connection; the receiver writes it to disk
  and fsyncs it once at the end. The floor for "a file received durably over TLS".
* pesit: our requester pushes the file (CREATE/WRITE, 65,535-byte entities each carrying one
  65,529-byte article, 32 KB sync interval: a SYN between every two entities) to our server,
  which spools it, makes it durable before every ACK(SYN), and hands the whole file to an
  inbox port that reads it back and fsyncs it to a file once more.
* pesit-4k: the same with 4 KB articles, 8 to a DTF, then a SYN (the gateway's default cut).
* pesit+store: the pesit push into the real store (content-addressed payload, SHA-256,
  SQLite record), which is what the gateway does with a received file.

Memory must stay flat in the file size: the small file is pushed too, and both peaks shown.
Goal: pesit >= 0.7x raw.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.model import Direction
from gateway.store import Submission, open_store
from gateway.store.sqlite import SQLiteStore
from protocols.pesit.endpoint import (
    OutgoingFile,
    Peer,
    PesitListener,
    ServerProfile,
    client_context,
    push,
    server_context,
)
from protocols.pesit.events import FileInfo
from protocols.pesit.settings import PesitSettings
from protocols.ports import Accepted, InboxPort, Incoming

VARIANTS = ("raw", "pesit", "pesit-4k", "pesit+store")
ENTITY = 65535
ARTICLES = {"pesit": ENTITY - 6, "pesit-4k": 4096, "pesit+store": ENTITY - 6}
BLOCK = 1 << 20


# -- certificates (parent) -----------------------------------------------------------------


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer if name != "bench-ca" else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=name == "bench-ca", path_length=None), True)
    )
    return builder.sign(signer, hashes.SHA256())


def make_certificates(folder: Path) -> None:
    """A CA, AIFE's requester certificate and our server certificate (P-256 keys)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("bench-ca", ca_key, x509.Name([]), ca_key)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in ("client", "server"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(name, key, ca.subject, ca_key)
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def make_source(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for start in range(0, size, BLOCK):
            out.write(os.urandom(min(BLOCK, size - start)))


# -- one measurement (child) ---------------------------------------------------------------


def _contexts(certs: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, bytes, bytes]:
    anchors = (certs / "ca.pem").read_text()
    server = server_context(
        certificate=certs / "server.pem", key=certs / "server.key", anchors=anchors
    )
    client = client_context(
        certificate=certs / "client.pem", key=certs / "client.key", anchors=anchors
    )
    ders = [
        x509.load_pem_x509_certificate((certs / f"{n}.pem").read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        for n in ("client", "server")
    ]
    return server, client, ders[0], ders[1]


def _write_durably(path: Path, chunks: list[bytes]) -> None:
    with path.open("ab") as out:
        out.writelines(chunks)


def _fsync(path: Path) -> None:
    with path.open("rb+") as out:
        os.fsync(out.fileno())


async def raw_copy(source: Path, work: Path, certs: Path) -> None:
    """The floor: TLS stream in, file out, one fsync, a one-byte answer."""
    server_tls, client_tls, _, _ = _contexts(certs)
    target = work / "raw.out"
    size = source.stat().st_size

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        left = size
        pending: list[bytes] = []
        while left:
            data = await reader.read(min(left, 1 << 18))
            if not data:
                break
            left -= len(data)
            pending.append(data)
            if sum(map(len, pending)) >= BLOCK:
                await asyncio.to_thread(_write_durably, target, pending)
                pending = []
        await asyncio.to_thread(_write_durably, target, pending)
        await asyncio.to_thread(_fsync, target)
        writer.write(b"k")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(receive, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls)
    with source.open("rb") as handle:
        while block := await asyncio.to_thread(handle.read, BLOCK):
            writer.write(block)
            await writer.drain()
    assert await reader.read(1) == b"k"
    writer.close()
    server.close()


class FileInbox:
    """An inbox port that reads the spooled file back and fsyncs it once more to a file."""

    def __init__(self, target: Path) -> None:
        self._target = target

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        del incoming
        size = 0
        pending: list[bytes] = []
        assert not isinstance(data, bytes)
        async for chunk in data:
            pending.append(chunk)
            size += len(chunk)
            if sum(map(len, pending)) >= BLOCK:
                await asyncio.to_thread(_write_durably, self._target, pending)
                pending = []
        await asyncio.to_thread(_write_durably, self._target, pending)
        await asyncio.to_thread(_fsync, self._target)
        return Accepted("bench", "", size, duplicate=False)


class StoreInbox:
    """The inbox port over the real store (what the gateway's reception path does)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        submission = Submission(
            source=incoming.source,
            direction=Direction.RECEPTION,
            interface_code=incoming.interface_code,
            protocol="pesit",
            connection=incoming.connection,
            expected_size=incoming.expected_size,
        )
        receipt = await self._store.accept(data, submission)
        return Accepted(receipt.message_id, receipt.sha256, receipt.size, receipt.duplicate)


async def pesit_push(
    source: Path, work: Path, certs: Path, *, window: int, article: int, store: bool
) -> None:
    server_tls, client_tls, client_der, server_der = _contexts(certs)
    settings = PesitSettings(
        requester_id="CPRO", server_id="PA", sync_interval_kb=32, sync_window=window,
        max_entity_size=ENTITY, article_size=article,
    )  # fmt: skip
    opened = await open_store(work / "store") if store else None
    inbox: InboxPort = StoreInbox(opened) if opened else FileInbox(work / "pesit.out")
    profile = ServerProfile(
        connection="bench", settings=settings, names={}, max_size=1 << 40, spool_dir=work / "spool"
    )
    listener = PesitListener(
        profile, host="127.0.0.1", port=0, ssl_context=server_tls,
        pins=frozenset({client_der}), inbox=inbox,
        admission=_Open(), outgoing=_Nothing(),
    )  # fmt: skip
    await listener.start()
    peer = Peer(
        connection="bench", host="127.0.0.1", port=listener.port,
        ssl_context=client_tls, pins=frozenset({server_der}), settings=settings,
    )  # fmt: skip
    try:
        size_kb = -(-source.stat().st_size // 1024)
        file = FileInfo(
            file_name="FEN1200A", transfer_id=1, max_size_kb=size_kb, article_size=article
        )
        await push(peer, source, file=file)
    finally:
        await listener.stop(timeout=5)
        if opened is not None:
            await opened.close()


class _Open:
    def admit(self, interface_code: str) -> None:
        del interface_code


class _Nothing:
    async def waiting(self, interface_code: str) -> list[OutgoingFile]:
        del interface_code
        return []

    async def delivered(self, file: OutgoingFile, *, transfer_id: int) -> None:
        del file, transfer_id


def child(variant: str, source: Path, work: Path, certs: Path, window: int) -> dict[str, float]:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    start = time.perf_counter()
    if variant == "raw":
        asyncio.run(raw_copy(source, work, certs))
    else:
        pushing = pesit_push(
            source, work, certs, window=window, article=ARTICLES[variant],
            store=variant == "pesit+store",
        )  # fmt: skip
        asyncio.run(pushing)
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rss_mb": rss_mb}


# -- the table (parent) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    variant: str
    size: int
    seconds: float  # best of the rounds
    rss_mb: float  # highest peak of the rounds

    @property
    def rate(self) -> float:
        return self.size / self.seconds / 1e6 if self.seconds else 0.0


def _measure(variant: str, source: Path, base: Path, certs: Path, window: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix=f"{variant.replace('+', '-')}-", dir=base))
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", variant, "--source", str(source),
             "--work", str(work), "--certs", str(certs), "--window", str(window)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{variant} failed: {done.stderr.strip()[-2000:]}")
        result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(
    *, sizes: Sequence[int], rounds: int, window: int, directory: Path | None = None
) -> list[Row]:
    """Alternate the variants `rounds` times per size; keep the best time and highest peak."""
    base = Path(tempfile.mkdtemp(prefix="raccord-bench-pesit-", dir=directory))
    try:
        certs = base / "certs"
        certs.mkdir()
        make_certificates(certs)
        rows = []
        for size in sizes:
            source = base / f"source-{size}"
            make_source(source, size)
            seen: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
            for _ in range(rounds):
                for variant in VARIANTS:
                    seen[variant].append(_measure(variant, source, base, certs, window))
            for variant, results in seen.items():
                best = min(r["seconds"] for r in results)
                peak = max(r["rss_mb"] for r in results)
                rows.append(Row(variant, size, best, peak))
            source.unlink()
        return rows
    finally:
        shutil.rmtree(base, ignore_errors=True)


def render(rows: Sequence[Row], *, window: int) -> str:
    lines = [
        f"PeSIT push over TLS, loopback: entities {ENTITY} B, sync interval 32 KB, window {window}",
        f"{'variant':<12} {'size MB':>8} {'seconds':>8} {'MB/s':>8} {'x raw':>6}"
        f" {'peak RSS MB':>12}",
    ]
    raw = {r.size: r.rate for r in rows if r.variant == "raw"}
    for row in rows:
        ratio = row.rate / raw[row.size] if raw.get(row.size) else 0.0
        lines.append(
            f"{row.variant:<12} {row.size / 1e6:>8.1f} {row.seconds:>8.3f} {row.rate:>8.1f}"
            f" {ratio:>6.2f} {row.rss_mb:>12.1f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=100.0, help="the large file")
    parser.add_argument("--small-mb", type=float, default=10.0, help="the small file")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per size")
    parser.add_argument("--window", type=int, default=16, help="sync points in flight")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (target disk)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--certs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.source, args.work, args.certs, args.window)))
        return 0
    sizes = [int(args.small_mb * (1 << 20)), int(args.size_mb * (1 << 20))]
    rows = run(sizes=sizes, rounds=args.rounds, window=args.window, directory=args.dir)
    print(render(rows, window=args.window))
    return 0


if __name__ == "__main__":
    sys.exit(main())
