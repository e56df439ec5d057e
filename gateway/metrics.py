"""Every `raccord_*` metric, declared in one place. Labels are bounded sets only.

Label values come from configuration (connection names), the interface catalogue (codes; anything
unknown is folded into `unknown` by `code_label`), or the closed enums below (outcome, protocol,
direction). Never a message id, file name or peer-supplied string.
"""

from __future__ import annotations

from collections.abc import Container

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from gateway import __version__

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

UNKNOWN = "unknown"

BUILD_INFO = Info("raccord_build", "Raccord build information", registry=REGISTRY)
BUILD_INFO.info({"version": __version__})

MESSAGES = Counter(
    "raccord_messages_total",
    "Messages handled, by protocol, direction, interface code, connection and outcome",
    ["protocol", "direction", "interface_code", "connection", "outcome"],
    registry=REGISTRY,
)
BYTES = Counter(
    "raccord_bytes_total",
    "Payload bytes handled",
    ["protocol", "direction", "interface_code", "connection"],
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "raccord_processing_duration_seconds",
    "Time from first byte to durable acknowledgement (reception) or to acknowledgement (emission)",
    ["protocol", "direction"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
STORE_COMMIT_SECONDS = Histogram(
    "raccord_store_commit_duration_seconds",
    "Duration of one durable store commit (a group commit may carry several records)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "raccord_duplicates_total",
    "Submissions recognised as duplicates and answered with the original receipt",
    ["protocol", "interface_code"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "raccord_outbox_pending",
    "Messages waiting in a connection's outbox (queued, sending or sent)",
    ["connection"],
    registry=REGISTRY,
)
OUTBOX_OLDEST_AGE = Gauge(
    "raccord_outbox_oldest_age_seconds",
    "Age of the oldest message waiting in a connection's outbox",
    ["connection"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "raccord_retries_total",
    "Send attempts scheduled again after a failure",
    ["connection"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "raccord_dead_total",
    "Messages that exhausted their retries",
    ["connection"],
    registry=REGISTRY,
)
CERT_EXPIRY = Gauge(
    "raccord_certificate_expiry_timestamp_seconds",
    "notAfter of each configured certificate, Unix time",
    ["connection", "role"],
    registry=REGISTRY,
)
CRL_NEXT_UPDATE = Gauge(
    "raccord_crl_next_update_timestamp_seconds",
    "When each configured CRL file is due for renewal (its earliest nextUpdate), Unix time",
    ["crl"],  # the config field (gateway.crls[0]...): bounded by the configuration
    registry=REGISTRY,
)
CONNECTION_STATUS = Gauge(
    "raccord_connection_status",
    "1 for the current lifecycle status of each connection, 0 for the others",
    ["connection", "status"],
    registry=REGISTRY,
)
TRAFFIC_REFUSED = Counter(
    "raccord_traffic_refused_total",
    "Transfers refused because a connection may not carry traffic",
    ["connection", "reason"],
    registry=REGISTRY,
)
ROUTING = Counter(
    "raccord_routing_total",
    "Routing decisions by interface code and outcome",
    ["interface_code", "outcome"],
    registry=REGISTRY,
)
SERVICE_START_FAILURES = Counter(
    "raccord_service_start_failures_total",
    "Failed attempts to start a listener or worker (a port taken...); retried with backoff",
    ["service"],
    registry=REGISTRY,
)
CONFIG_RELOADS = Counter(
    "raccord_config_reloads_total",
    "Configuration reloads (SIGHUP) by outcome",
    ["outcome"],
    registry=REGISTRY,
)
AS2_MDN = Counter(
    "raccord_as2_mdn_total",
    "AS2 MDNs sent or received, by disposition and modifier",
    ["connection", "direction", "disposition", "modifier"],
    registry=REGISTRY,
)

REFUSED = Counter(
    "raccord_refused_total",
    "Files refused at intake or reception, by protocol and refusal kind (protocols.ports)",
    ["protocol", "direction", "kind"],
    registry=REGISTRY,
)
SESSIONS = Gauge(
    "raccord_sessions",
    "Open protocol sessions (SFTP, PeSIT, AS2 connections) by protocol and role",
    ["protocol", "role"],
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "raccord_authentication_failures_total",
    "Peers refused at authentication (key, certificate, password, AS2 identifiers)",
    ["protocol", "reason"],
    registry=REGISTRY,
)
PESIT_DIAGNOSTICS = Counter(
    "raccord_pesit_diagnostics_total",
    "PeSIT diagnostics sent or received that are not success",
    ["connection", "direction", "diagnostic"],
    registry=REGISTRY,
)
SYNC_POINTS = Counter(
    "raccord_pesit_sync_points_total",
    "PeSIT sync points acknowledged, by direction",
    ["connection", "direction"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "raccord_deliveries_total",
    "Received flows delivered to the back office, by target (folder, webhook) and outcome",
    ["target", "interface_code", "outcome"],
    registry=REGISTRY,
)
LIFECYCLE_STATUSES = Counter(
    "raccord_lifecycle_statuses_total",
    "Invoice statuses and integration results received, by interface code and status",
    ["interface_code", "status"],
    registry=REGISTRY,
)


def code_label(code: str, known: Container[str]) -> str:
    """An interface code as a label value: itself when catalogued, else `unknown`."""
    return code if code in known else UNKNOWN


def exposition() -> bytes:
    """The Prometheus text exposition of every Raccord metric."""
    return generate_latest(REGISTRY)
