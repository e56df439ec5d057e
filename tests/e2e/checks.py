"""What an auditor asks of a settled campaign; each check returns the problems it found.

An empty list is a pass. Problems name the invoice, flow or message, so a red run says what was
lost or doubled, and where.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from gateway.correlation_xml import facts_from_bytes
from gateway.simulator import flows
from tests.e2e.audit import Snapshot, StoredMessage
from tests.e2e.campaign import Record
from tests.e2e.gateway_process import log_events
from tests.e2e.plan import Invoice, Plan

__all__ = [
    "acknowledgements_backed",
    "chains_complete",
    "crash_coverage",
    "delivered_once",
    "deposited_once",
    "expected_statuses",
    "hostile_refused",
    "outage_drained",
]


def deposited_once(plan: Plan, snap: Snapshot) -> list[str]:
    """Chorus Pro holds each invoice exactly once, on its lane's connection, integrated."""
    wanted = {i.number: i for i in plan.invoices}
    found: dict[str, list[str]] = defaultdict(list)
    problems = []
    for deposit in snap.deposits:
        if not deposit.invoices:
            problems.append(f"deposit {deposit.file_name} on {deposit.connection}: no invoice")
        for number in deposit.invoices:
            invoice = wanted.get(number)
            if invoice is None:
                problems.append(f"deposit {deposit.file_name}: unexpected invoice {number}")
                continue
            found[number].append(deposit.flow_id)
            if deposit.connection != invoice.lane.connection or deposit.code != invoice.code:
                problems.append(f"{number} went to {deposit.connection}/{deposit.code}")
            if deposit.result != flows.INTEGRATED:
                problems.append(f"{number} was not integrated: {deposit.reason}")
    for number in wanted:
        if len(found[number]) != 1:
            problems.append(f"{number} deposited {len(found[number])} times: {found[number]}")
    return problems


def _message_of(invoice: Invoice, snap: Snapshot, problems: list[str]) -> StoredMessage | None:
    receipt = snap.receipts.get(invoice.file_name)
    if receipt is None:
        problems.append(f"{invoice.number}: no drop receipt")
        return None
    message = snap.messages.get(receipt["message_id"])
    if message is None:
        problems.append(
            f"{invoice.number}: receipt names {receipt['message_id']}, not in the store"
        )
        return None
    if (message.direction, message.connection) != ("emission", invoice.lane.connection):
        problems.append(f"{invoice.number}: stored as {message.direction} on {message.connection}")
    return message


def acknowledgements_backed(plan: Plan, snap: Snapshot) -> list[str]:
    """Every receipt the drop folder gave names a stored message (one per invoice, none
    else); every flow the simulator saw acknowledged is stored exactly once, and nothing the
    simulator did not hand over was taken."""
    problems = [f"drop refused {path.name}" for path in snap.rejected]
    ids = [m.id for i in plan.invoices if (m := _message_of(i, snap, problems)) is not None]
    if len(set(ids)) != len(ids):
        problems.append(f"receipts share message ids: {len(ids) - len(set(ids))} repeats")
    extra = {m.id for m in snap.emitted()} - set(ids)
    problems += [f"emitted message {m} matches no dropped invoice" for m in sorted(extra)]
    stored = Counter((m.connection, m.file_name) for m in snap.received())
    sent = {(f.connection, f.file_name) for f in snap.flows if f.sent}
    for flow in snap.flows:
        if not flow.sent:
            problems.append(f"simulator still owes {flow.file_name} ({flow.attempts} attempts)")
        elif stored[(flow.connection, flow.file_name)] != 1:
            count = stored[(flow.connection, flow.file_name)]
            problems.append(f"{flow.file_name} acknowledged to the simulator, stored {count}x")
    problems += [f"stored {n} from {c}: the simulator never sent it" for c, n in stored
                 if (c, n) not in sent]  # fmt: skip
    return problems


def delivered_once(snap: Snapshot) -> list[str]:
    """The back office's folder holds each received flow once (`<message id>_<file name>`)."""
    by_name = Counter(name.partition("_")[2] for name in snap.delivered)
    stored = {m.id: m.file_name for m in snap.received()}
    problems = [f"{name} delivered {n} times" for name, n in by_name.items() if n != 1]
    for name in snap.delivered:
        message_id, _, original = name.partition("_")
        if stored.get(message_id) != original:
            problems.append(f"{name}: no received message {message_id} named {original}")
    for flow in snap.flows:
        if flow.sent and by_name[flow.file_name] == 0:
            problems.append(f"{flow.file_name} never reached the back office")
    return problems


def expected_statuses(snap: Snapshot) -> dict[str, list[str]]:
    """Per invoice, the statuses the simulator sent, in the order it sent them."""
    expected: dict[str, list[str]] = defaultdict(list)
    for flow in snap.flows:
        if flow.kind == "status":
            for record in facts_from_bytes(flow.body).records:
                if record.invoice is not None:
                    expected[record.invoice].append(record.status)
    return expected


def _chain(invoice: Invoice, message: StoredMessage, snap: Snapshot, want: list[str]) -> list[str]:
    events = snap.events.get(message.id, [])
    kinds = [e.kind for e in events]
    problems = []
    if message.state != "acknowledged" or kinds.count("acknowledged") != 1:
        problems.append(
            f"{invoice.number}: {message.state}, acknowledged {kinds.count('acknowledged')}x"
        )
    reports = [e for e in events if e.kind == "integration_report"]
    statuses = [e for e in events if e.kind == "lifecycle_status"]
    if [r.detail.get("status") for r in reports] != ["integrated"]:
        problems.append(f"{invoice.number}: reports {[r.detail.get('status') for r in reports]}")
    got = [str(e.detail.get("status")) for e in statuses]
    if got != want:
        problems.append(f"{invoice.number}: statuses {got}, Chorus Pro sent {want}")
    if reports and statuses and events.index(reports[0]) > events.index(statuses[0]):
        problems.append(f"{invoice.number}: a status came before its integration report")
    for event in statuses:
        flow = snap.messages.get(str(event.detail.get("message_id")))
        if flow is None or (flow.interface_code, flow.protocol) != (
            invoice.lane.lifecycle_code, invoice.lane.protocol,
        ):  # fmt: skip
            problems.append(f"{invoice.number}: status via {flow}")
    return problems


def chains_complete(plan: Plan, snap: Snapshot) -> list[str]:
    """accepted → acknowledged → integration report → every status Chorus Pro sent, once each,
    on the invoice's own message, over its lane's protocol."""
    expected = expected_statuses(snap)
    problems: list[str] = []
    for invoice in plan.invoices:
        message = _message_of(invoice, snap, problems)
        if message is not None:
            problems += _chain(invoice, message, snap, expected.get(invoice.number, []))
        if len(expected.get(invoice.number, [])) < 3:
            problems.append(f"{invoice.number}: a chain of {expected.get(invoice.number)}")
    return problems


def _seconds(at: str) -> float:
    return dt.datetime.fromisoformat(at).timestamp()


def outage_drained(
    record: Record, snap: Snapshot, outages: tuple[tuple[dt.datetime, dt.datetime], ...]
) -> list[str]:
    """Nothing was deposited while Chorus Pro was down; the gateway retried with backoff; every
    invoice dropped meanwhile went out after it came back, promptly."""
    if len(outages) != 1:
        return [f"{len(outages)} outages"]
    began, ended = (t.timestamp() for t in outages[0])
    problems = []
    if ended - began < record.plan.outage_for:
        problems.append(f"the outage lasted {ended - began:.1f} s")
    during = [d for d in snap.deposits if began + 1.5 < d.received_at < ended]
    problems += [f"{d.file_name} deposited during the outage" for d in during]
    retried = [
        e for events in snap.events.values() for e in events
        if e.kind == "retry_scheduled" and began <= _seconds(e.at) <= ended
    ]  # fmt: skip
    if not retried or not any(m.attempts > 1 for m in snap.emitted()):
        problems.append("no send was retried during the outage (attempts > 1)")
    after = sorted(d.received_at for d in snap.deposits if d.received_at >= ended)
    if not after or after[0] - ended > 10.0:
        problems.append(f"first deposit after the outage: {after[:1]} (back at {ended:.1f})")
    waiting = [n for n, at in record.dropped_at.items() if began < at < ended]
    deposited = {n for d in snap.deposits if d.received_at >= ended for n in d.invoices}
    problems += [f"{n} dropped during the outage, not out after it" for n in waiting
                 if n not in deposited]  # fmt: skip
    return problems


# The warning each protocol logs when it turns a peer away (what an operator sees).
REFUSAL_EVENTS = {
    "as2": "as2.message_refused",
    "sftp": "sftp.auth_failed",
    "pesit": "pesit.certificate_refused",
}


def hostile_refused(record: Record, snap: Snapshot) -> list[str]:
    """Each hostile flow was refused, counted as an authentication failure and logged by the
    gateway that refused it, and left no trace in the store or the back office's folder."""
    problems = []
    if len(record.hostile) != len(record.plan.hostile):
        problems.append(f"{len(record.hostile)} hostile attempts of {len(record.plan.hostile)}")
    stored = {m.file_name for m in snap.messages.values()}
    delivered = {name.partition("_")[2] for name in snap.delivered}
    for done in record.hostile:
        o = done.outcome
        if not o.refused:
            problems.append(
                f"{o.protocol} on {o.target} wearing {o.wearing}: accepted ({o.reason})"
            )
        if done.failures_after <= done.failures_before:
            problems.append(f"{o.protocol}: no authentication failure counted ({done.log})")
        logged = [e for e in log_events(done.log) if e.get("event") == REFUSAL_EVENTS[o.protocol]]
        if not logged or logged[0].get("level") != "warning":
            problems.append(f"{o.protocol}: no {REFUSAL_EVENTS[o.protocol]} warning in {done.log}")
        if o.file_name in stored or o.file_name in delivered:
            problems.append(f"{o.protocol}: the hostile {o.file_name} was taken")
    return problems


def crash_coverage(snap: Snapshot) -> dict[str, int]:
    """What the kills hit (printed, not asserted: it depends on timing): sends interrupted
    mid-flight per connection (`recovered` at start-up), and repeats the gateway recognised."""
    found: Counter[str] = Counter()
    for message_id, events in snap.events.items():
        message = snap.messages[message_id]
        for event in events:
            if event.kind == "recovered":
                found[f"send interrupted on {message.connection}"] += 1
            elif event.kind == "duplicate":
                found[f"repeat recognised from {message.connection or message.source}"] += 1
    return dict(sorted(found.items()))
