"""Inbound AS2 messages per second end to end, beside the raw crypto floor, in the same run.

    python bench/as2.py [--count 200] [--sizes 10240,102400] [--concurrency 8] [--rounds 3]
                        [--rss-mb 100] [--repeats 30] [--dir PATH]

End to end: `raccord serve` (the daemon, AS2 plug only) runs in a child process on loopback;
this process POSTs messages AIFE would send (signed SHA-256, compressed, AES-256-CBC, signed
synchronous MDN asked for) and counts answered 200s with a positive MDN, each payload durable
in the store first. The floor does the same CMS work for the same kind of message with
`cryptography` and zlib alone (RSA key unwrap, AES-CBC, inflate, digest + signature check, MDN
signature), on 1 thread and on as many threads as cores, as the daemon uses its worker pool.
Every figure is the median of `--rounds` rounds (the machine may be shared: the load average is
printed). Beside the issue's floor, `+durable` is that floor plus the payload made durable the
way bench/store.py's floor does it (temp file, fsync, rename, fsync of its directory): the least
any receiver that answers only once the payload is on disk pays here, its CPU per message too.
Also: our build + parse + MDN build + MDN parse round trip beside the same work done with
`cryptography` alone (pyas2lib measured 29-34 ms at 100 KB), and the child's peak RSS receiving
one big payload.
Goals: end to end >= 0.5x the floor (all cores); round trip >= 10x faster; peak <= 3x payload.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

if not __package__:  # run as `python bench/as2.py`: its sibling module must be importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.as2_setup import (
    AIFE,
    OPTIONS,
    OURS,
    Answer,
    DurableFloor,
    Keys,
    aife_params,
    build_all,
    crypto_round_trip,
    durable_floor,
    floor_rate,
    now_utc,
    payload_of,
    seal,
    write_setup,
)
from protocols.as2.cms import CertRef, DecryptionIdentity, SigningIdentity
from protocols.as2.mdn import Disposition, build_mdn, parse_mdn
from protocols.as2.mdn_request import MdnRequest, parse_disposition_options
from protocols.as2.message import BuiltMessage, build_message, parse_message
from protocols.as2.params import As2ReceiveParams, MdnParams

# --- end to end: the daemon in a child process ------------------------------------------------


class Child:
    """`bench/as2.py --serve CONFIG`: the daemon, reporting its RSS as JSON lines."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(config)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def read(self, kind: str) -> dict[str, float]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{") and f'"bench": "{kind}"' in line:
                report: dict[str, float] = json.loads(line)
                return report
        raise RuntimeError(f"child ended before reporting {kind!r}")

    def cpu(self) -> tuple[float, float]:
        """The child's (user, system) CPU seconds, from /proc (zeros elsewhere)."""
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0, 0.0
        tick = os.sysconf("SC_CLK_TCK")
        return int(stat[11]) / tick, int(stat[12]) / tick

    def stop(self) -> dict[str, float]:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.read("done")
        finally:
            self.proc.wait(timeout=60)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


async def _serve(config: Path) -> None:
    from gateway import plug_as2
    from gateway.daemon import Daemon

    daemon = Daemon(config, factories=[plug_as2.factory], extensions=[])
    task = asyncio.create_task(daemon.run())
    port = yaml.safe_load(config.read_text())["connections"][0]["network"]["partner"]["port"]
    while not (daemon.context is not None and await _accepting(port)):
        await asyncio.sleep(0.02)
    baseline = _vm("VmRSS")
    print(json.dumps({"bench": "ready", "baseline_kb": baseline}), flush=True)
    await task
    report = {
        "bench": "done",
        "baseline_kb": baseline,
        "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,  # counts the parent's
        "hwm_kb": _vm("VmHWM"),  # RSS at fork, VmHWM does not: the parent must fork small
    }
    print(json.dumps(report), flush=True)


async def _accepting(port: int) -> bool:
    """Readiness is reported per service as each starts: wait for the listener itself."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


def _vm(field: str) -> int:
    """A /proc/self/status memory figure in KiB (0 where /proc is not Linux's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def post_all(
    port: int, built: Sequence[BuiltMessage], *, concurrency: int
) -> tuple[float, list[Answer]]:
    """Messages per second answered 200, and the answers (MDNs are checked off the clock)."""
    answers: list[Answer] = []
    queue = list(built)
    url = f"http://127.0.0.1:{port}/as2"

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            message = queue.pop()
            body = _client_body(message.body)
            async with session.post(url, data=body, headers=message.headers) as response:
                answer = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {answer[:200]!r}")
                answers.append((dict(response.headers.items()), answer))

    timeout = aiohttp.ClientTimeout(total=600)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(built) / elapsed, answers


def _client_body(body: bytes) -> bytes | io.BytesIO:
    """What the load generator POSTs, Content-Length either way. Bytes up to 1 MiB: aiohttp
    reads a file-like body in its thread pool (a hop per chunk on the cores the daemon
    uses); a big one stays file-like so the client does not write it in one go."""
    return body if len(body) <= 1 << 20 else io.BytesIO(body)


def check_mdns(keys: Keys, answers: Sequence[Answer]) -> None:
    for headers, body in answers:
        mdn = parse_mdn(headers, body, partner_certificates=[keys.pa_cert], now=now_utc())
        if not mdn.accepted:
            raise RuntimeError(f"negative MDN: {mdn.disposition.header_value()} {mdn.text}")


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch POSTed: its rate and CPU per message (daemon user, daemon system, client)."""

    rate: float
    user_ms: float
    sys_ms: float
    client_ms: float


def end_to_end(
    config: Path, keys: Keys, batches: Sequence[Sequence[BuiltMessage]], *, concurrency: int
) -> list[Batch]:
    """One child daemon; each batch POSTed in turn."""
    port = yaml.safe_load(config.read_text())["connections"][0]["network"]["partner"]["port"]
    child = Child(config)
    try:
        child.read("ready")
        results = []
        for built in batches:
            (user, system), client = child.cpu(), time.process_time()
            rate, answers = asyncio.run(post_all(port, built, concurrency=concurrency))
            client = time.process_time() - client
            (user_end, sys_end), count = child.cpu(), len(built) / 1000
            results.append(Batch(rate, (user_end - user) / count, (sys_end - system) / count,
                                 client / count))  # fmt: skip
            check_mdns(keys, answers)
    finally:
        child.stop()
    return results


# --- round trip and memory ----------------------------------------------------------------


def _median_ms(step: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def round_trip_ms(keys: Keys, size: int, *, repeats: int) -> tuple[float, float]:
    """Median ms of build + parse + MDN build + MDN parse for one `size`-byte payload, and of
    the same primitives with `cryptography` alone."""
    payload = payload_of(size)
    send = dataclasses.replace(aife_params(keys), file_name="CSO1100A_1.xml")
    receive = As2ReceiveParams(
        as2_from=AIFE, as2_to=OURS, partner_certificates=(keys.aife_cert,),
        decryption=(DecryptionIdentity(keys.pa_key, keys.pa_cert),),
    )  # fmt: skip
    mdn_params = MdnParams(
        as2_from=OURS, as2_to=AIFE, signing=SigningIdentity(keys.pa_key, keys.pa_cert)
    )
    request = MdnRequest("as2", None, parse_disposition_options(OPTIONS))
    pa_ref = CertRef.of(keys.pa_cert)  # prepared once, as the daemon's plans are

    def trip() -> None:
        built = build_message(payload, params=send, now=now_utc())
        received = parse_message(built.headers, built.body, params=receive, now=now_utc())
        mdn = build_mdn(
            original_message_id=built.message_id,
            disposition=Disposition(),
            mic=received.mic,
            request=request,
            params=mdn_params,
            now=now_utc(),
        )
        parsed = parse_mdn(mdn.headers, mdn.body, partner_certificates=[pa_ref],
                           expected_mic=built.mic, now=now_utc())  # fmt: skip
        # bytes(view) == bytes is a memcmp; view == bytes compares item by item (0.17 ms here)
        if not parsed.accepted or bytes(received.payload) != payload:
            raise RuntimeError("round trip lost the payload or its MIC")

    ours = _median_ms(trip, repeats)
    return ours, _median_ms(lambda: crypto_round_trip(keys, payload), repeats)


def peak_rss(size: int, directory: Path | None) -> tuple[int, int]:
    """(idle, peak) RSS in KiB of a child daemon receiving one `size`-byte payload.

    The child is started before the message is built: Linux carries a parent's peak RSS into
    its children, so the parent must be small when it forks.
    """
    with tempfile.TemporaryDirectory(dir=directory, prefix="raccord-bench-as2-") as tmp:
        config, port, keys = write_setup(Path(tmp), max_size=size + (1 << 20))
        child = Child(config)
        try:
            child.read("ready")
            [built] = build_all(keys, [payload_of(size)])
            _, answers = asyncio.run(post_all(port, [built], concurrency=1))
            check_mdns(keys, answers)
        finally:
            report = child.stop()
        return int(report["baseline_kb"]), int(max(report["peak_kb"], report["hwm_kb"]))


# --- the table ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """Medians over the rounds for one payload size."""

    size: int
    end_to_end: float
    server_cpu_ms: float  # the daemon's CPU time per message (user + system)
    server_sys_ms: float  # of which system (the store's fsyncs, sockets, thread hand-offs)
    client_cpu_ms: float  # the load generator's, on the same cores
    floor_one: float
    floor_all: float
    ratios: tuple[float, ...]  # end to end / floor (all cores), per round
    durable_all: float  # the floor plus the payload made durable, all cores
    durable_cpu_ms: float  # its CPU time per message

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else 0.0


def _line(
    size: int,
    batches: Sequence[Batch],
    floors: Sequence[tuple[float, float]],
    durables: Sequence[DurableFloor],
) -> Line:
    med = statistics.median
    return Line(size, med(b.rate for b in batches), med(b.user_ms + b.sys_ms for b in batches),
                med(b.sys_ms for b in batches), med(b.client_ms for b in batches),
                med(f[0] for f in floors), med(f[1] for f in floors),
                tuple(b.rate / f[1] for b, f in zip(batches, floors, strict=True)),
                med(d.rate for d in durables), med(d.cpu_ms for d in durables))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Report:
    lines: list[Line]
    round_trip_ms: float
    crypto_round_trip_ms: float
    rss_payload: int
    rss_baseline_kb: int
    rss_peak_kb: int
    load: tuple[float, float]  # 1-minute load average before and after


def run(
    *,
    count: int = 200,
    sizes: Sequence[int] = (10 * 1024, 100 * 1024),
    concurrency: int = 8,
    rounds: int = 3,
    rss_size: int = 100 * 1024 * 1024,
    repeats: int = 30,
    directory: Path | None = None,
) -> Report:
    """Every measurement of the table, in one run; each round's end to end beside its floor."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    posted: list[list[Batch]] = [[] for _ in sizes]
    floors: list[list[tuple[float, float]]] = [[] for _ in sizes]
    durables: list[list[DurableFloor]] = [[] for _ in sizes]
    with tempfile.TemporaryDirectory(dir=directory, prefix="raccord-bench-as2-") as tmp:
        config, _, keys = write_setup(Path(tmp), max_size=max(sizes) * 4)
        sealed = [[seal(keys, payload_of(size)) for _ in range(count)] for size in sizes]
        for round_ in range(rounds):
            warm = build_all(keys, [payload_of(1024) for _ in range(min(count, 20))])
            batches = [build_all(keys, [payload_of(size) for _ in range(count)]) for size in sizes]
            done = end_to_end(config, keys, [warm, *batches], concurrency=concurrency)[1:]
            for i, batch in enumerate(done):
                posted[i].append(batch)
                floors[i].append((floor_rate(keys, sealed[i], threads=1),
                                  floor_rate(keys, sealed[i], threads=cores)))  # fmt: skip
                fresh = Path(tmp) / f"durable-{round_}-{i}"  # new names: nothing replaced
                durables[i].append(durable_floor(keys, sealed[i], fresh, threads=cores))
    lines = [_line(size, posted[i], floors[i], durables[i]) for i, size in enumerate(sizes)]
    trip, crypto = round_trip_ms(keys, 100 * 1024, repeats=repeats)
    baseline, peak = peak_rss(rss_size, directory)
    return Report(lines, trip, crypto, rss_size, baseline, peak, (load, os.getloadavg()[0]))


def render(report: Report, *, count: int, concurrency: int) -> str:
    cores = os.cpu_count() or 1
    rounds = len(report.lines[0].ratios) if report.lines else 0
    lines = [
        f"inbound AS2 messages per second, {count} per size, {concurrency} in flight, "
        f"{cores} cores, median of {rounds} rounds (sign SHA-256 + compress + AES-256-CBC, signed "
        f"sync MDN); 1-min load average {report.load[0]:.1f} before, {report.load[1]:.1f} after",
        f"{'payload':>8} | {'end to end':>10} | {'daemon CPU/msg':>14} | {'floor 1 thr':>11} | "
        f"{f'floor {cores} thr':>11} | {'e2e/floor':>9} | {f'+durable {cores} thr':>14}",
        f"{'-' * 8}-+-{'-' * 10}-+-{'-' * 14}-+-{'-' * 11}-+-{'-' * 11}-+-{'-' * 9}-+-{'-' * 14}",
    ]
    lines += [
        f"{line.size // 1024:>6}KB | {line.end_to_end:>10.0f} | {line.server_cpu_ms:>11.2f} ms | "
        f"{line.floor_one:>11.0f} | {line.floor_all:>11.0f} | {line.ratio:>8.2f}x | "
        f"{line.durable_all:>14.0f}"
        for line in report.lines
    ]
    lines += [
        f"  {line.size // 1024}KB: daemon CPU {line.server_sys_ms:.2f} ms of it in the kernel; "
        f"the load generator {line.client_cpu_ms:.2f} ms/msg on the same cores; "
        f"e2e/floor per round {', '.join(f'{r:.2f}' for r in line.ratios)}; the floor with the "
        f"payload made durable (+durable: no HTTP, no database) costs "
        f"{line.durable_cpu_ms:.2f} ms CPU/msg, {line.durable_all / line.floor_all:.2f}x the floor"
        for line in report.lines
    ]
    speedup = 29.0 / report.round_trip_ms if report.round_trip_ms else 0.0
    grown = (report.rss_peak_kb - report.rss_baseline_kb) * 1024
    mib = report.rss_payload / (1 << 20)
    lines += [
        "",
        f"round trip at 100KB (build + parse + MDN build + MDN parse): "
        f"{report.round_trip_ms:.2f} ms ({speedup:.1f}x faster than pyas2lib's 29-34 ms; "
        f"the same primitives with cryptography alone: {report.crypto_round_trip_ms:.2f} ms)",
        f"peak RSS receiving {mib:.0f} MiB: {report.rss_peak_kb / 1024:.0f} MiB "
        f"({report.rss_peak_kb * 1024 / report.rss_payload:.2f}x the payload; "
        f"{grown / report.rss_payload:.2f}x above the idle daemon's "
        f"{report.rss_baseline_kb / 1024:.0f} MiB)",
    ]
    return "\n".join(lines)


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200, help="messages per payload size")
    parser.add_argument("--sizes", type=_sizes, default=[10 * 1024, 100 * 1024])
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians reported)")
    parser.add_argument("--rss-mb", type=float, default=100.0, help="payload of the RSS run")
    parser.add_argument("--repeats", type=int, default=30, help="round trips (median)")
    parser.add_argument(
        "--dir", type=lambda text: Path(text).resolve(), default=None, help="where the store writes"
    )
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        asyncio.run(_serve(args.serve))
        return 0
    report = run(count=args.count, sizes=args.sizes, concurrency=args.concurrency,
                 rounds=args.rounds, rss_size=int(args.rss_mb * (1 << 20)),
                 repeats=args.repeats, directory=args.dir)  # fmt: skip
    print(render(report, count=args.count, concurrency=args.concurrency))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
