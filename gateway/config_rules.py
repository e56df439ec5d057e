"""Rules that look across fields and connections (domain.md §3, §5): each returns ConfigErrors.

Per-field rules (SIRET, phone, dates…) are pydantic validators in `config.py`; what needs the
whole file — uniqueness, the catalogue, routing ambiguity, certificate material — is here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from gateway.config import Config, ConnectionConfig
from gateway.errors import ConfigError
from gateway.interfaces import Catalogue, builtin_catalogue, spec_from_mapping
from gateway.model import Circuit, ConnectionStatus, Direction, Protocol

if TYPE_CHECKING:
    from gateway.credentials import LoadedCredentials

Positions = Sequence[int] | None

# Sheets past draft must carry the certificate their protocol authenticates with.
_NEEDS_CLIENT_PAIR = {Protocol.AS2, Protocol.SFTP, Protocol.PESIT}


def catalogue_for(config: Config) -> Catalogue:
    """The built-in catalogue extended with the operator's declared codes."""
    catalogue, _ = _extra_interfaces(config)
    return catalogue


def _extra_interfaces(config: Config) -> tuple[Catalogue, list[ConfigError]]:
    errors: list[ConfigError] = []
    catalogue = builtin_catalogue()
    for index, extra in enumerate(config.interfaces):
        where = f"interfaces[{index}]"
        try:
            spec = spec_from_mapping(extra.model_dump(mode="json"))
            current = catalogue.get(spec.code)
            if current is not None and not current.confirmed:
                catalogue = catalogue.overridden([spec])  # our unconfirmed defaults yield
            else:
                catalogue = catalogue.extended([spec])
        except ValueError as exc:
            field, _, reason = str(exc).partition(": ")
            if reason and " " not in field:
                errors.append(ConfigError(f"{where}.{field}", reason))
            else:
                errors.append(ConfigError(f"{where}.code", str(exc)))
    return catalogue, errors


def _names(config: Config, positions: Positions) -> Iterator[ConfigError]:
    seen: dict[str, ConnectionConfig] = {}
    for index, conn in _numbered(config, positions):
        other = seen.get(conn.name)
        if other is None:
            seen[conn.name] = conn
        elif (other.exchange_system, other.structure) == (conn.exchange_system, conn.structure):
            yield ConfigError(
                f"connections[{index}].name",
                f"{conn.name!r} is already used for exchange system {conn.exchange_system} "
                f"and structure {conn.structure}",
            )
        else:
            yield ConfigError(
                f"connections[{index}].name",
                f"{conn.name!r} is already the name of another connection "
                "(names are this gateway's connection keys)",
            )


def _shape(config: Config, positions: Positions) -> Iterator[ConfigError]:
    for index, conn in _numbered(config, positions):
        where = f"connections[{index}]"
        if conn.protocol is Protocol.PESIT and conn.circuit is not Circuit.B2G:
            yield ConfigError(f"{where}.protocol", "PeSIT is accepted for B2G only")
        needs_pair = conn.protocol in _NEEDS_CLIENT_PAIR
        if needs_pair and conn.status is not ConnectionStatus.BROUILLON:
            if conn.certificates.client is None:
                yield ConfigError(
                    f"{where}.certificates.client",
                    f"required: a {conn.protocol.value} sheet past draft authenticates with it",
                )
            if conn.protocol is Protocol.AS2 and not conn.certificates.partner:
                yield ConfigError(
                    f"{where}.certificates.partner",
                    "required: AS2 verifies and encrypts with AIFE's certificate",
                )


def _subscriptions(
    config: Config, catalogue: Catalogue, positions: Positions
) -> Iterator[ConfigError]:
    owner: dict[tuple[str, str, str], str] = {}
    for index, conn in _numbered(config, positions):
        for direction in (Direction.EMISSION, Direction.RECEPTION):
            codes = getattr(conn.subscriptions, direction.value)
            for position, code in enumerate(codes):
                where = f"connections[{index}].subscriptions.{direction.value}[{position}]"
                spec = catalogue.get(code)
                if spec is None:
                    yield ConfigError(where, f"{code} is not in the interface catalogue")
                    continue
                if spec.direction is not direction:
                    actual = spec.direction.value
                    yield ConfigError(where, f"{code} is a {actual} code, not {direction.value}")
                if conn.circuit not in spec.circuits:
                    circuits = "/".join(sorted(c.value for c in spec.circuits))
                    yield ConfigError(
                        where, f"{code} belongs to {circuits}, not to {conn.circuit.value}"
                    )
                key = (conn.environment.value, code, direction.value)
                if key in owner and owner[key] != conn.name:
                    yield ConfigError(
                        where,
                        f"{code} ({direction.value}, {conn.environment.value}) is already carried "
                        f"by connection {owner[key]!r}: routing must never be ambiguous",
                    )
                owner.setdefault(key, conn.name)


def _shared_files(config: Config, positions: Positions) -> Iterator[ConfigError]:
    """Cheap first pass: the same certificate or key *file* named by two connections."""
    owner: dict[str, str] = {}
    for index, conn in _numbered(config, positions):
        for role, pair in conn.certificates.own().items():
            for kind, path in (("certificate", pair.certificate), ("key", pair.key)):
                key = str(path.resolve())
                first = owner.setdefault(key, conn.name)
                if first != conn.name:
                    yield ConfigError(
                        f"connections[{index}].certificates.{role}.{kind}",
                        f"{path} is also used by connection {first!r}: "
                        "one certificate per connection",
                    )


def _numbered(config: Config, positions: Positions) -> Iterator[tuple[int, ConnectionConfig]]:
    """Each sheet with its index in the file (sheets that failed validation are left out)."""
    for offset, conn in enumerate(config.connections):
        yield (positions[offset] if positions is not None else offset), conn


def _as2_identities(config: Config, positions: Positions) -> Iterator[ConfigError]:
    """AS2 names pick the connection of an inbound message: they must never be ambiguous, and
    two sheets sharing a listener must agree on its scheme."""
    from gateway.settings import settings_of
    from gateway.settings.as2 import As2Settings, aife_as2_id, listen_address, our_as2_id

    names: dict[tuple[str, str], str] = {}
    listeners: dict[tuple[str, int], tuple[str, str]] = {}
    for index, conn in _numbered(config, positions):
        if conn.protocol is not Protocol.AS2:
            continue
        settings = settings_of(conn, As2Settings)
        pair = (aife_as2_id(conn, settings), our_as2_id(conn, settings))
        first = names.setdefault(pair, conn.name)
        if first != conn.name:
            yield ConfigError(
                f"connections[{index}].settings.as2_id",
                f"AS2-From {pair[0]!r} to AS2-To {pair[1]!r} already identifies connection "
                f"{first!r}",
            )
        host, port, scheme = listen_address(conn, settings)
        other = listeners.setdefault((host, port), (scheme, conn.name))
        if other[0] != scheme:
            yield ConfigError(
                f"connections[{index}].settings.listen_scheme",
                f"{host}:{port} is already an {other[0]} listener for connection {other[1]!r}",
            )


def _pesit_identities(config: Config, positions: Positions) -> Iterator[ConfigError]:
    """PI 3 carries at most 24 printable ASCII characters; one listener per host and port."""
    from gateway.settings import settings_of
    from gateway.settings.pesit import PesitSettings

    listeners: dict[tuple[str, int], str] = {}
    for index, conn in _numbered(config, positions):
        if conn.protocol is not Protocol.PESIT:
            continue
        settings = settings_of(conn, PesitSettings)
        ours = settings.our_id(conn)
        if len(ours) > 24 or not (ours.isascii() and ours.isprintable()):
            where = "settings.local_id" if settings.local_id else "network.partner.part_id"
            yield ConfigError(
                f"connections[{index}].{where}",
                f"{ours!r} cannot travel in PeSIT PI 3 (at most 24 printable ASCII characters)",
            )
        if settings.listen:
            address = settings.listen_address(conn)
            first = listeners.setdefault(address, conn.name)
            if first != conn.name:
                yield ConfigError(
                    f"connections[{index}].settings.listen_port",
                    f"{address[0]}:{address[1]} is already the PeSIT listener of {first!r}",
                )


_WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})  # noqa: S104 - recognised, never bound


def _listener_claims(
    config: Config, positions: Positions
) -> Iterator[tuple[str, tuple[str, int], str, str]]:
    """(field path, (host, port), protocol, owner) of every address the gateway listens on."""
    from gateway.settings import settings_of
    from gateway.settings.as2 import As2Settings, listen_address
    from gateway.settings.pesit import PesitSettings
    from gateway.settings.sftp import SftpSettings, sftp_settings

    settings: As2Settings | SftpSettings | PesitSettings
    for index, conn in _numbered(config, positions):
        if conn.protocol is Protocol.AS2:
            settings = settings_of(conn, As2Settings)
            address, protocol = listen_address(conn, settings)[:2], "AS2"
        elif conn.protocol is Protocol.SFTP and (settings := sftp_settings(conn)).listen:
            address, protocol = settings.listen_address(conn), "SFTP"
        elif (
            conn.protocol is Protocol.PESIT
            and (settings := settings_of(conn, PesitSettings)).listen
        ):
            address, protocol = settings.listen_address(conn), "PeSIT"
        else:
            continue
        field = "settings.listen_port" if settings.listen_port else "network.partner.port"
        yield f"connections[{index}].{field}", address, protocol, f"connection {conn.name!r}"
    if config.sftp is not None and config.sftp.listen.port:
        listen = config.sftp.listen
        yield "sftp.listen.port", (listen.host, listen.port), "SFTP", "the sftp: block"
    admin = config.gateway.admin
    if admin.port:
        yield "gateway.admin.port", (admin.host, admin.port), "admin", "the admin server"


def _overlap(a: tuple[str, int], b: tuple[str, int]) -> bool:
    return a[1] == b[1] and (a[0] == b[0] or a[0] in _WILDCARDS or b[0] in _WILDCARDS)


def _listener_addresses(config: Config, positions: Positions) -> Iterator[ConfigError]:
    """One protocol per listening address: two would leave one listener unable to bind, and
    the flows AIFE sends it would never arrive (AS2 sheets may share a listener, SFTP sheets
    too; PeSIT listeners are checked per sheet in `_pesit_identities`)."""
    seen: list[tuple[tuple[str, int], str, str]] = []
    for where, address, protocol, owner in _listener_claims(config, positions):
        if address[1] == 0:  # any free port, chosen at bind time: it clashes with nothing
            continue
        clash = next((s for s in seen if _overlap(s[0], address) and s[1] != protocol), None)
        if clash is not None:
            yield ConfigError(
                where,
                f"{address[0]}:{address[1]} is already the {clash[1]} listener of {clash[2]}: "
                "one protocol per listening address",
            )
        seen.append((address, protocol, owner))


def check_rules(
    config: Config, *, check_files: bool = True, positions: Positions = None
) -> list[ConfigError]:
    """Every cross-field rule; with `check_files`, certificate material is loaded and checked.

    `positions` maps each sheet of `config` to its index in the file when some sheets were
    dropped for failing validation, so that every message names the right `connections[i]`.
    """
    catalogue, errors = _extra_interfaces(config)
    errors.extend(_names(config, positions))
    errors.extend(_shape(config, positions))
    errors.extend(_subscriptions(config, catalogue, positions))
    errors.extend(_shared_files(config, positions))
    errors.extend(_as2_identities(config, positions))
    errors.extend(_pesit_identities(config, positions))
    errors.extend(_listener_addresses(config, positions))
    if check_files and not errors:
        errors.extend(_material(config))
    return errors


def _material(config: Config) -> list[ConfigError]:
    _, errors = check_material(config, now=dt.datetime.now(dt.UTC))
    return errors


def check_material(
    config: Config, *, now: dt.datetime
) -> tuple[LoadedCredentials, list[ConfigError]]:
    """Certificates, keys and CRLs, then the SFTP key rules that need them (one key, one
    account): the credentials loaded, for a caller that serves with them (one parse of
    every file per start or reload), and every problem found."""
    from gateway.credentials import load_credentials
    from gateway.plug_sftp import config_problems

    credentials, errors = load_credentials(config, now=now)
    if not errors:
        errors.extend(config_problems(config, credentials))
    return credentials, errors
