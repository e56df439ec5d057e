"""The back office of `make run`: drops sample invoices, and answers G2B invoices with statuses.

Files go to the gateway's drop folder the way the folder asks writers to (dropfolder.py): written
as `<name>.part`, then renamed to `<drop>/<env>/<CODE>/<name>`.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from xml.sax.saxutils import escape

from gateway.simulator.samples import Sample, samples

__all__ = ["drop_file", "drop_samples", "g2b_status"]


def drop_file(drop_dir: Path, *, environment: str, code: str, name: str, data: bytes) -> Path:
    """Blocking: write `.part`, fsync, rename into place; returns the final path."""
    folder = drop_dir / environment / code
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    temp = folder / f"{name}.part"
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temp.replace(final)
    return final


def drop_samples(drop_dir: Path, *, environments: tuple[str, ...], now: dt.datetime) -> list[Path]:
    """One UBL, one CII and one Factur-X invoice per environment (blocking)."""
    dropped: list[Path] = []
    stamp = now.strftime("%H%M%S")
    for environment in environments:
        made: list[Sample] = samples(prefix=f"{environment.upper()}-{stamp}", issued=now.date())
        for sample in made:
            dropped.append(drop_file(drop_dir, environment=environment, code=sample.code,
                                     name=sample.file_name, data=sample.data))  # fmt: skip
    return dropped


def g2b_status(invoice: str, *, status: str = "PRISE_EN_CHARGE") -> bytes:
    """The status a PA's client sends back about a G2B invoice (format not public: ours)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<StatutFactureG2B>
  <Facture><NumeroFacture>{escape(invoice)}</NumeroFacture><Statut>{escape(status)}</Statut></Facture>
</StatutFactureG2B>
""".encode()
