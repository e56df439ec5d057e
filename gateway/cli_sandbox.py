"""`raccord sandbox`: the local Chorus Pro simulator (registered by `cli.build_parser`).

Runs in its own process beside the gateway (`make run` starts both), so the gateway can be killed
and restarted under it. Ctrl-C (SIGINT) or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from gateway.config import Config
from gateway.config_load import ConfigErrors, load
from gateway.logging import configure
from gateway.simulator.desk import Timing
from gateway.simulator.runner import Options, Simulator, prepare

__all__ = ["register", "sandbox"]

_DEFAULT_CONFIG = Path(os.environ.get("RACCORD_CONFIG", "config/sandbox/raccord.yaml"))


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a share is between 0 and 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("seconds cannot be negative")
    return value


def _options(args: argparse.Namespace, config: Config) -> Options:
    default = config.gateway.data_dir.parent / "simulator"
    state_dir: Path = args.state_dir or default
    timing = Timing(
        report_delay=args.report_delay,
        status_interval=args.status_interval,
        reject_share=args.reject_share,
        suspend_share=args.suspend_share,
    )
    return Options(state_dir=state_dir, timing=timing, seed=args.seed, feed=not args.no_feed,
                   g2b_every=args.g2b_every, summary_every=args.summary_every)  # fmt: skip


async def _run(simulator: Simulator, duration: float | None) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, simulator.request_stop)
    if duration is not None:
        loop.call_later(duration, simulator.request_stop)
    return await simulator.run()


def sandbox(args: argparse.Namespace) -> int:
    """Play Chorus Pro for every connection of the configuration, on loopback."""
    configure(level="info", stream=sys.stderr)  # stdout carries the summary table
    config_path: Path = args.config
    try:  # files are read by the simulator itself; the SFTP pins it writes may not exist yet
        config = load(config_path, check_files=False)
    except ConfigErrors as exc:
        print(f"configuration refused: {exc}", file=sys.stderr)
        return 2
    if args.prepare:
        for path in prepare(config):
            print(f"wrote {path}")
        return 0
    simulator = Simulator(config, _options(args, config), out=sys.stdout)
    return asyncio.run(_run(simulator, args.duration))


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`raccord sandbox [--config …] [--no-feed] [--seed N] …`."""
    parser = commands.add_parser("sandbox", help="the local Chorus Pro simulator",
                                 description=sandbox.__doc__)  # fmt: skip
    parser.set_defaults(handler=sandbox)
    parser.add_argument("--config", type=Path, default=_DEFAULT_CONFIG, help="the gateway's YAML")
    parser.add_argument("--state-dir", type=Path, help="default: var/simulator beside var/data")
    parser.add_argument("--prepare", action="store_true",
                        help="write the SFTP host-key pins, then exit")  # fmt: skip
    parser.add_argument("--no-feed", action="store_true", help="drop no sample invoices")
    parser.add_argument("--seed", type=int, help="seed of the REJETEE/SUSPENDUE draw")
    parser.add_argument("--report-delay", type=_seconds, default=2.0, metavar="SECONDS")
    parser.add_argument("--status-interval", type=_seconds, default=4.0, metavar="SECONDS")
    parser.add_argument("--reject-share", type=_share, default=0.15, metavar="SHARE")
    parser.add_argument("--suspend-share", type=_share, default=0.10, metavar="SHARE")
    parser.add_argument("--g2b-every", type=_seconds, default=0.0, metavar="SECONDS",
                        help="issue a G2B invoice this often (default: one at start)")  # fmt: skip
    parser.add_argument("--summary-every", type=_seconds, default=10.0, metavar="SECONDS")
    parser.add_argument("--duration", type=_seconds, help="stop after this many seconds")
