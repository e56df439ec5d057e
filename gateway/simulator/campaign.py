"""The campaign's configuration: the sandbox, plus B2G over SFTP, on free ports, quick retries.

The sandbox sends B2G invoices over AS2 (QUAL) and PeSIT (PROD) and uses SFTP for G2B only. An
end-to-end campaign (tests/e2e, bench/e2e.py) wants invoices out over all three protocols, so
this adds a fifth sheet, `b2g-qual-sftp`: B2G on QUAL over SFTP, subscribed to FSO1150A (UBL,
the reform's flow), which no other QUAL sheet emits, and receiving its report CSO1150A and the
CPP V1 lifecycle FEN1201A (FEN1200A is b2g-qual-as2's on QUAL: routing is never ambiguous). Its
certificates are generated like the others (`certs/sandbox/b2g-qual-sftp.*`, and AIFE's
`aife-qual-b2g-sftp.*`, whose key is AIFE's SSH host and login key for that sheet).

Every sheet gets a retry policy whose backoff is capped at a couple of seconds, so a backlog
drains promptly once Chorus Pro is back, with attempts enough never to go dead during an
outage. The drop folder is scanned often and files settle briefly. Never edits
config/sandbox: `build` writes a private copy under the given folder.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.config_load import load
from gateway.sandbox_pki import ensure_sandbox_certificates
from gateway.simulator.runner import prepare

__all__ = ["SFTP_B2G", "CampaignRetry", "PortPicker", "build", "with_b2g_sftp"]

SFTP_B2G = "b2g-qual-sftp"
SFTP_B2G_CODE = "FSO1150A"
_PORT = re.compile(r"(\{host: 127\.0\.0\.1, port: )(\d+)")
_PROTOCOL_LINE = re.compile(r"^(    protocol: (?:as2|sftp|pesit)\n)", re.MULTILINE)

_SHEET = """
  - name: {name}
    structure: "98765432400019"
    environment: qual
    circuit: b2g
    protocol: sftp
    settings:
      known_hosts: ../../certs/sandbox/aife-qual-b2g-sftp.known_hosts
      remote_dirs: {{{code}: /out/{code}}}
    status: actif
    validity: *validity
    contact: *contact
    network:
      aife: {{host: 127.0.0.1, port: {aife}}}
      partner: {{host: 127.0.0.1, port: {partner}, part_id: PA-B2G-QUAL-SFTP}}
    certificates:
      client: {{certificate: ../../certs/sandbox/{name}.pem, key: ../../certs/sandbox/{name}.key}}
      partner: [../../certs/sandbox/aife-qual-b2g-sftp.pem]
    subscriptions:
      emission: [{code}]
      reception: [CSO1150A, FEN1201A]
"""

_INTAKE = """intake:
  drop_dir: ../../var/drop
  poll_interval: {poll}
  settle_seconds: 0.2
  correlation_interval: 1
"""


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class PortPicker:
    """Free loopback ports for listeners, never the same one twice, below the ephemeral range.

    Below it, because a client retrying a loopback port nobody listens on (the simulator while
    the gateway restarts) may be handed that very port as its own and connect to itself (TCP
    simultaneous open): the listener that comes back then cannot bind. Real listeners sit on
    fixed ports outside that range too.
    """

    def __init__(self, *, low: int = 20000, seed: int | None = None) -> None:
        self._low, self._high = low, min(_ephemeral_start(), 65536) - 1
        self._draw = random.Random(seed)  # noqa: S311 - port numbers, not secrets
        self._given: set[int] = set()

    def __call__(self) -> int:
        for _ in range(1000):
            port = self._draw.randint(self._low, self._high)
            if port not in self._given and _free(port):
                self._given.add(port)
                return port
        raise OSError(f"no free port between {self._low} and {self._high}")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignRetry:
    """Every sheet's outbox policy in the campaign (seconds)."""

    max_attempts: int = 1000
    base_delay: float = 0.5
    max_delay: float = 2.0


def with_b2g_sftp(
    text: str,
    *,
    free_port: Callable[[], int],
    retry: CampaignRetry = CampaignRetry(),
    drop_poll: float = 0.5,
) -> str:
    """The sandbox YAML (text) with free ports, the B2G SFTP sheet, capped retries (pure)."""
    text = _PORT.sub(lambda m: f"{m.group(1)}{free_port()}", text)
    text = text.replace("  shutdown_timeout: 10", "  shutdown_timeout: 3")
    text = text.replace("intake:\n  drop_dir: ../../var/drop\n", _INTAKE.format(poll=drop_poll))
    policy = (
        f"    retry: {{max_attempts: {retry.max_attempts}, base_delay: {retry.base_delay},"
        f" max_delay: {retry.max_delay}}}\n"
    )
    sheet = _SHEET.format(name=SFTP_B2G, code=SFTP_B2G_CODE, aife=free_port(), partner=free_port())
    text = text.rstrip("\n") + "\n" + sheet
    return _PROTOCOL_LINE.sub(lambda m: m.group(1) + policy, text)


def build(
    root: Path, *, source: Path, now: dt.datetime, free_port: Callable[[], int] | None = None
) -> Path:
    """Blocking: write the campaign's YAML under `root` (certs/ and var/ land beside it), make
    its certificates and the SFTP host-key pins; returns the YAML's path. Ports come from a
    `PortPicker` unless `free_port` is given."""
    target = root / "config" / "sandbox" / "raccord.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(with_b2g_sftp(source.read_text(), free_port=free_port or PortPicker()))
    config = load(target, check_files=False, env={"RACCORD_ADMIN_PORT": "0"})
    ensure_sandbox_certificates(config, now=now)
    prepare(config)
    return target
