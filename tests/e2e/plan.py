"""The campaign's plan, drawn from one seed: which invoices, when the waves, kills and outage come.

Everything random in a campaign comes from `Plan.draw(seed)`, so a red run is replayed with
`RACCORD_E2E_SEED=<seed>`; `Plan.replay()` is printed with every failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway.simulator.campaign import SFTP_B2G, SFTP_B2G_CODE

__all__ = ["LANES", "Armed", "Hostile", "Invoice", "Lane", "Plan"]


@dataclass(frozen=True, slots=True)
class Lane:
    """One way out to Chorus Pro: a drop folder (environment, codes) and its connection."""

    protocol: str
    environment: str
    connection: str
    codes: tuple[str, ...]  # alternated: UBL (FSO1100A/FSO1150A), CII (FSO1106A)
    lifecycle_code: str


LANES = (
    Lane("as2", "qual", "b2g-qual-as2", ("FSO1100A", "FSO1106A"), "FEN1200A"),
    Lane("sftp", "qual", SFTP_B2G, (SFTP_B2G_CODE,), "FEN1201A"),
    Lane("pesit", "prod", "b2g-prod-pesit", ("FSO1100A", "FSO1106A"), "FEN1200A"),
)


@dataclass(frozen=True, slots=True)
class Invoice:
    """One invoice the back office drops: one file, one invoice number."""

    number: str
    lane: Lane
    code: str
    wave: int

    @property
    def file_name(self) -> str:
        return f"{self.number}.xml"

    @property
    def cii(self) -> bool:
        return self.code == "FSO1106A"


@dataclass(frozen=True, slots=True)
class Hostile:
    """At `at` s, a flow on `target` presenting the AIFE certificate of `wearing`."""

    at: float
    target: str
    wearing: str
    lifecycle_code: str


@dataclass(frozen=True, slots=True)
class Armed:
    """A kill that waits for the next deposit on `connection`: at once (Chorus Pro has the
    file, its answer is not out) or `after_answer` (out, the gateway has not recorded it)."""

    connection: str
    after_answer: bool = False

    def __str__(self) -> str:
        return f"{self.connection} {'after the answer' if self.after_answer else 'on deposit'}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    seed: int
    invoices: tuple[Invoice, ...]
    wave_every: float
    kills: tuple[float, ...]  # seconds from the start of the run
    armed: dict[int, Armed]  # kill index -> the deposit that kill waits for
    outage_at: float
    outage_for: float
    hostile: tuple[Hostile, ...]

    @classmethod
    def draw(
        cls, seed: int, *, waves: int = 10, per_wave: int = 30, wave_every: float = 6.0,
        kills: int = 10, outage_at: float = 14.5, outage_for: float = 30.0,
    ) -> Plan:  # fmt: skip
        """Waves of `per_wave` invoices spread over the lanes, `wave_every` seconds apart from
        1 s; Chorus Pro down from `outage_at` for `outage_for` seconds; `kills` moments, one
        drawn in each of equal slots over the run (each restart has time to come up before
        the next kill, yet it lands anywhere: mid-intake, mid-send, mid-outage, mid-drain).
        Four are armed instead, just after a wave or the outage's end (deposits flowing): on
        the next deposit on one lane's connection, they kill the gateway the moment Chorus Pro
        holds the file (each protocol once), or — PeSIT, whose answer is a whole exchange —
        once its answer is out and before the gateway has recorded it."""
        draw = random.Random(seed)
        invoices = tuple(
            Invoice(f"E2E{seed % 100000:05d}-{w:02d}-{i:03d}", LANES[i % 3],
                    LANES[i % 3].codes[(i // 3) % len(LANES[i % 3].codes)], w)
            for w in range(waves) for i in range(per_wave)
        )  # fmt: skip
        drops = [1.0 + w * wave_every for w in range(waves)]
        back = outage_at + outage_for
        pre = [d for d in drops if d < outage_at - 1.0]
        post = [d for d in drops if d > back]
        as2, sftp, pesit = (lane.connection for lane in LANES)
        wanted = [(pre[:1], Armed(as2)), (pre[1:2], Armed(pesit, after_answer=True)),
                  ([back], Armed(sftp)), (post[:1], Armed(pesit))]  # fmt: skip
        span = drops[-1] + outage_for
        slot = span / kills
        moments = [round(3.0 + k * slot + draw.uniform(0.0, slot - 3.0), 2) for k in range(kills)]
        armed: dict[int, Armed] = {}
        for at, what in ((at[0], what) for at, what in wanted if at):
            nearest = min((k for k in range(kills) if k not in armed),
                          key=lambda k: abs(moments[k] - at))  # fmt: skip
            moments[nearest], armed[nearest] = round(at + 0.3, 2), what
        hostile = (
            Hostile(round(draw.uniform(outage_at + 1.0, outage_at + 10.0), 2), as2,
                    "g2b-prod-as2", "FEN1200A"),
            Hostile(round(draw.uniform(outage_at + 12.0, back - 2.0), 2), sftp,
                    "g2b-qual-sftp", "FEN1201A"),
            Hostile(round(draw.uniform(drops[-1] + 6.0, span), 2), pesit,
                    "b2g-qual-as2", "FEN1200A"),
        )  # fmt: skip
        return cls(seed=seed, invoices=invoices, wave_every=wave_every, kills=tuple(moments),
                   armed=armed, outage_at=outage_at, outage_for=outage_for,
                   hostile=hostile)  # fmt: skip

    def replay(self) -> str:
        kills = ", ".join(f"{k:.2f}" + (f" (armed: {self.armed[n]})" if n in self.armed else "")
                          for n, k in enumerate(self.kills))  # fmt: skip
        hostile = ", ".join(f"{h.target}@{h.at:.2f}" for h in self.hostile)
        return (
            f"replay with RACCORD_E2E_SEED={self.seed}: kills at [{kills}] s, outage "
            f"{self.outage_at:.1f}+{self.outage_for:.0f} s, hostile [{hostile}]"
        )

    @property
    def waves(self) -> int:
        return max(i.wave for i in self.invoices) + 1
