"""A PeSIT push over TLS on loopback beside a raw asyncio TLS copy of the same bytes.

    python bench/pesit.py [--size-mb 100] [--rounds 3] [--window 16] [--dir /target/disk]
                          [--variants raw,pesit,...]

Every measurement runs in its own child process so that its peak RSS is its own, and times
the transfer alone: from the TCP connect to the answer that the file is durable (raw: the
one-byte answer; PeSIT: `push` returning, after TRANS.END was answered and RELEASE
confirmed); starting the listener and opening the store are not in it. Rows:

* raw: the file streamed through an asyncio TLS connection; the receiver writes it to disk
  and fsyncs it once at the end. The floor for "a file received durably over TLS".
* pesit: our requester pushes the file (CREATE/WRITE, 65,535-byte entities each carrying one
  65,529-byte article, 32 KB sync interval: a SYN between every two entities) to our server,
  which spools it, makes it durable before every ACK(SYN), and hands the finished spool to
  an inbox port that adopts it (rename, fsync of the folder): PeSIT's own cost.
* pesit-4k: the same with 4 KB articles, 8 to a DTF, then a SYN (the gateway's default cut).
* pesit+store: the pesit push into the real store (content-addressed payload, SHA-256,
  SQLite record) through its streaming `accept`, which reads the spool back and writes it
  again: what an inbox that cannot adopt a spooled file costs.
* pesit+adopt: the same store through `Store.adopt`, the gateway's own path: the spool,
  hashed while it was written, is renamed into the payload tree.

Memory must stay flat in the file size: the small file is pushed too, and both peaks shown.
Goal: pesit >= 0.7x raw. This machine is shared: run several rounds and read the ranges
(`per round` pairs each variant with the raw copy of the same round).
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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

if not __package__:  # run as `python bench/pesit.py`: its sibling modules must be importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pesit_inboxes import (
    AdoptingStoreInbox,
    FileInbox,
    StoreInbox,
    fsync_file,
    write_all,
)
from gateway.store import open_store
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
from protocols.ports import InboxPort

VARIANTS = ("raw", "pesit", "pesit-4k", "pesit+store", "pesit+adopt")
ENTITY = 65535
ARTICLES = {
    "pesit": ENTITY - 6, "pesit-4k": 4096, "pesit+store": ENTITY - 6, "pesit+adopt": ENTITY - 6,
}  # fmt: skip
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


async def raw_copy(source: Path, work: Path, certs: Path) -> float:
    """The floor: TLS stream in, file out, one fsync, a one-byte answer; the seconds from
    the TCP connect to the answer."""
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
                await asyncio.to_thread(write_all, target, pending)
                pending = []
        await asyncio.to_thread(write_all, target, pending)
        await asyncio.to_thread(fsync_file, target)
        writer.write(b"k")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(receive, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls)
    with source.open("rb") as handle:
        while block := await asyncio.to_thread(handle.read, BLOCK):
            writer.write(block)
            await writer.drain()
    assert await reader.read(1) == b"k"
    seconds = time.perf_counter() - start
    writer.close()
    server.close()
    return seconds


async def _inbox(variant: str, work: Path) -> tuple[InboxPort, SQLiteStore | None]:
    if variant == "pesit+store":
        store = await open_store(work / "store")
        return StoreInbox(store), store
    if variant == "pesit+adopt":
        adopting = await open_store(work / "store")
        return AdoptingStoreInbox(adopting), adopting
    return FileInbox(work / "pesit.out"), None


async def pesit_push(source: Path, work: Path, certs: Path, *, variant: str, window: int) -> float:
    """The seconds `push` takes: TLS connect, CONNECT to RELEASE, the file durable (and
    recorded) before TRANS.END is answered. Opening the store and the listener is not in it."""
    server_tls, client_tls, client_der, server_der = _contexts(certs)
    article = ARTICLES[variant]
    settings = PesitSettings(
        requester_id="CPRO", server_id="PA", sync_interval_kb=32, sync_window=window,
        max_entity_size=ENTITY, article_size=article,
    )  # fmt: skip
    inbox, opened = await _inbox(variant, work)
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
        start = time.perf_counter()
        await push(peer, source, file=file)
        return time.perf_counter() - start
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
    if variant == "raw":
        seconds = asyncio.run(raw_copy(source, work, certs))
    else:
        seconds = asyncio.run(pesit_push(source, work, certs, variant=variant, window=window))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rss_mb": rss_mb}


# -- the table (parent) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One variant at one size: the seconds of every round, in round order."""

    variant: str
    size: int
    seconds: tuple[float, ...]
    rss_mb: float  # highest peak of the rounds

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        return self.size / self.best / 1e6 if self.best else 0.0


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
    *,
    sizes: Sequence[int],
    rounds: int,
    window: int,
    directory: Path | None = None,
    variants: Sequence[str] = VARIANTS,
) -> list[Row]:
    """Alternate the variants `rounds` times per size; keep every time and the highest peak."""
    base = Path(tempfile.mkdtemp(prefix="raccord-bench-pesit-", dir=directory))
    try:
        certs = base / "certs"
        certs.mkdir()
        make_certificates(certs)
        rows = []
        for size in sizes:
            source = base / f"source-{size}"
            make_source(source, size)
            seen: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
            for _ in range(rounds):
                for variant in variants:
                    seen[variant].append(_measure(variant, source, base, certs, window))
            for variant, results in seen.items():
                times = tuple(r["seconds"] for r in results)
                rows.append(Row(variant, size, times, max(r["rss_mb"] for r in results)))
            source.unlink()
        return rows
    finally:
        shutil.rmtree(base, ignore_errors=True)


def render(rows: Sequence[Row], *, window: int) -> str:
    """Best and median seconds; `x raw`: best against raw's best, then the range of the
    ratios round by round (each round runs every variant back to back, so the load they
    share is nearly the same)."""
    lines = [
        f"PeSIT push over TLS, loopback: entities {ENTITY} B, sync interval 32 KB, window {window}",
        f"{'variant':<12} {'size MB':>8} {'best s':>7} {'median':>7} {'MB/s':>7} {'x raw':>6}"
        f" {'per round':>11} {'peak RSS MB':>12}",
    ]
    raw = {r.size: r for r in rows if r.variant == "raw"}
    for row in rows:
        base = raw.get(row.size)
        ratio = base.best / row.best if base else 0.0
        spread = ""
        if base and len(base.seconds) == len(row.seconds):
            each = [b / s for b, s in zip(base.seconds, row.seconds, strict=True)]
            spread = f"{min(each):.2f}-{max(each):.2f}"
        lines.append(
            f"{row.variant:<12} {row.size / 1e6:>8.1f} {row.best:>7.3f} {row.median:>7.3f}"
            f" {row.rate:>7.1f} {ratio:>6.2f} {spread:>11} {row.rss_mb:>12.1f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=100.0, help="the large file")
    parser.add_argument("--small-mb", type=float, default=10.0, help="the small file")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per size")
    parser.add_argument("--window", type=int, default=16, help="sync points in flight")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (target disk)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--certs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.source, args.work, args.certs, args.window)))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    if unknown := sorted(set(variants) - set(VARIANTS)):
        parser.error(f"unknown variants: {', '.join(unknown)}")
    sizes = [int(args.small_mb * (1 << 20)), int(args.size_mb * (1 << 20))]
    rows = run(
        sizes=[s for s in sizes if s > 0], rounds=args.rounds, window=args.window,
        directory=args.dir, variants=variants,
    )  # fmt: skip
    print(render(rows, window=args.window))
    return 0


if __name__ == "__main__":
    sys.exit(main())
