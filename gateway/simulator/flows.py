"""What the simulator says back: integration reports, lifecycle flows and G2B invoices (pure).

Chorus Pro's schemas for these flows are not public (domain.md §7), so the simulator writes what
the gateway's documented reader (`gateway.correlation_xml`) understands: a flow-level `Statut`
(INTEGRE / REJETE, with a `Motif`) beside the deposited file's name (`NomFichier`) for a report;
one `Facture` element per invoice (`NumeroFacture`, `Statut`, `Motif`, `DateStatut`) for a
lifecycle flow. Which statuses an invoice goes through is decided here, from a seeded draw.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from gateway.simulator.samples import ubl_invoice

__all__ = [
    "INTEGRATED",
    "REJECTED",
    "Lifecycle",
    "g2b_invoice",
    "integration_report",
    "lifecycle_flow",
    "plan_lifecycle",
]

INTEGRATED, REJECTED = "INTEGRE", "REJETE"
HAPPY_PATH = ("DEPOSEE", "MISE_A_DISPOSITION", "SERVICE_FAIT", "MANDATEE", "MISE_EN_PAIEMENT")
REJECT_REASONS = (
    "SIRET du destinataire inconnu dans Chorus Pro",
    "Numéro d'engagement absent ou invalide",
    "Facture en doublon (même numéro, même fournisseur)",
)
SUSPEND_REASONS = (
    "Pièce justificative manquante",
    "Montant incohérent avec le bon de commande",
)


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """One status of one invoice, and why (REJETEE and SUSPENDUE always carry a reason)."""

    status: str
    reason: str | None = None


def plan_lifecycle(
    draw: random.Random,
    *,
    reject_share: float,
    suspend_share: float,
    happy_path: Sequence[str] = HAPPY_PATH,
) -> list[Lifecycle]:
    """The statuses one invoice will go through: the happy path, or cut by a rejection or
    suspension after its first two steps (DEPOSEE, MISE_A_DISPOSITION), in the configured
    shares. A shorter happy path keeps a long campaign within its time, still as a chain."""
    if len(happy_path) < 2:
        raise ValueError("a lifecycle has at least two statuses")
    roll = draw.random()
    head = [Lifecycle(happy_path[0]), Lifecycle(happy_path[1])]
    if roll < reject_share:
        return [*head, Lifecycle("REJETEE", draw.choice(REJECT_REASONS))]
    if roll < reject_share + suspend_share:
        return [*head, Lifecycle("SUSPENDUE", draw.choice(SUSPEND_REASONS))]
    return [Lifecycle(status) for status in happy_path]


def _stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def integration_report(
    *, deposited_name: str, flow_id: str, result: str, reason: str | None, now: dt.datetime
) -> bytes:
    """The compte-rendu d'intégration of one deposited flow."""
    motif = f"\n  <Motif>{escape(reason)}</Motif>" if reason else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<CompteRenduIntegration>
  <NomFichier>{escape(deposited_name)}</NomFichier>
  <IdentifiantFlux>{escape(flow_id)}</IdentifiantFlux>
  <Horodatage>{_stamp(now)}</Horodatage>
  <Statut>{escape(result)}</Statut>{motif}
</CompteRenduIntegration>
""".encode()


def lifecycle_flow(
    *,
    deposited_name: str,
    statuses: Sequence[tuple[str | None, Lifecycle]],
    now: dt.datetime,
) -> bytes:
    """A FEN1200A-like lifecycle flow: one `Facture` per (invoice number, status)."""
    parts = []
    for number, step in statuses:
        numero = f"<NumeroFacture>{escape(number)}</NumeroFacture>" if number else ""
        motif = f"<Motif>{escape(step.reason)}</Motif>" if step.reason else ""
        parts.append(
            f"  <Facture>{numero}<Statut>{escape(step.status)}</Statut>{motif}"
            f"<DateStatut>{_stamp(now)}</DateStatut></Facture>"
        )
    body = "\n".join(parts)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<CycleDeVieFactures>
  <NomFichier>{escape(deposited_name)}</NomFichier>
{body}
</CycleDeVieFactures>
""".encode()


def g2b_invoice(number: str, *, now: dt.datetime) -> bytes:
    """An invoice a public entity issues to one of the PA's clients (G2B): UBL."""
    return ubl_invoice(number, issued=now.date(), amount="75.50")
