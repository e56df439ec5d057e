"""`raccord certs …`: inspect a file, export a connection's chain for the portal, new key + CSR."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from gateway.certload import (
    CertRole,
    export_p7b,
    load_certificates,
    new_key_and_csr,
    write_private_key,
)
from gateway.certpolicy import inspect_file
from gateway.config import ConnectionConfig
from gateway.config_load import ConfigErrors, load
from gateway.errors import CertificateError
from gateway.tables import render


def _fail(message: str) -> int:
    print(f"raccord: {message}", file=sys.stderr)
    return 1


def _connection(args: argparse.Namespace) -> ConnectionConfig | int:
    """The sheet named on the command line, or the exit code of the failure (printed)."""
    try:
        config = load(args.config, check_files=False)
    except ConfigErrors as exc:
        return _fail(str(exc))
    conn = config.connection(args.connection)
    if conn is None:
        return _fail(f"no connection named {args.connection!r}")
    return conn


def certs_inspect(args: argparse.Namespace) -> int:
    """One block per certificate in the file: identity, validity, usages, assurance level."""
    try:
        reports = inspect_file(args.file, now=dt.datetime.now(dt.UTC))
    except CertificateError as exc:
        return _fail(exc.reason)
    for index, rep in enumerate(reports):
        rows = [
            ("subject", rep.subject),
            ("issuer", rep.issuer),
            ("serial", rep.serial),
            ("not before", rep.not_before.isoformat()),
            ("not after", rep.not_after.isoformat()),
            ("sha256", rep.fingerprint_sha256),
            ("key", rep.key),
            ("key usage", ", ".join(rep.key_usages) or "-"),
            ("extended key usage", ", ".join(rep.extended_key_usages) or "-"),
            ("assurance", rep.assurance.value),
            *(("warning", w) for w in rep.warnings),
        ]
        print(f"certificate {index + 1} of {len(reports)}")
        print(render(["field", "value"], rows))
        print()
    return 0


def certs_export_p7b(args: argparse.Namespace) -> int:
    """The connection's public chain (never a key) as PKCS#7, PEM by default."""
    conn = _connection(args)
    if isinstance(conn, int):
        return conn
    pair = conn.certificates.client if args.role == "client" else conn.certificates.server
    if pair is None:
        return _fail(f"{conn.name}: no {args.role} certificate configured")
    try:
        data = export_p7b(load_certificates(pair.certificate), pem=not args.der)
    except CertificateError as exc:
        return _fail(exc.reason)
    if args.output is None:
        sys.stdout.buffer.write(data)
    else:
        args.output.write_bytes(data)
        print(f"{args.output}: {conn.name} {args.role} chain, {len(data)} bytes")
    return 0


def certs_new(args: argparse.Namespace) -> int:
    """A new key (0600) and CSR asking for the usages the connection's protocol needs."""
    conn = _connection(args)
    if isinstance(conn, int):
        return conn
    role = CertRole.TLS_CLIENT if args.role == "client" else CertRole.TLS_SERVER
    key_pem, csr_pem = new_key_and_csr(
        common_name=conn.network.partner.part_id,
        role=role,
        organization=f"SIRET {conn.structure}",
    )
    out: Path = args.output_dir or Path.cwd()
    key_path = out / f"{conn.name}-{args.role}.key"
    csr_path = out / f"{conn.name}-{args.role}.csr"
    try:
        write_private_key(key_path, key_pem)
    except CertificateError as exc:
        return _fail(exc.reason)
    csr_path.write_bytes(csr_pem)
    print(f"key: {key_path} (mode 0600)\ncsr: {csr_path}")
    return 0


def certs_sandbox(args: argparse.Namespace) -> int:
    """Create the sandbox CA and every missing sandbox certificate the configuration names."""
    from gateway.sandbox_pki import ensure_sandbox_certificates

    try:
        config = load(args.config, check_files=False)
    except ConfigErrors as exc:
        return _fail(str(exc))
    written = ensure_sandbox_certificates(config, now=dt.datetime.now(dt.UTC))
    for path in written:
        print(f"created {path.resolve()}")
    if not written:
        print("sandbox certificates already present")
    return 0
