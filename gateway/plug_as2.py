"""Wires AS2 into the daemon: listeners, one outbox worker per connection, the MDN routes.

Everything protocol-shaped lives in `protocols.as2`; this module translates the gateway into it:
sheets and credentials into parameters and TLS (`gateway.settings.as2`), the store into the MDN
journal and answers into metrics and logs (`gateway.as2_journal`), the outbox into senders
(`gateway.as2_outbox`). Plans are built once, when the services are made: nothing is loaded or
parsed again per message.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Sequence

from aiohttp import web

from gateway.admin import current_context
from gateway.as2_journal import StoreJournal, observe
from gateway.as2_outbox import As2Worker, client_tls_for, key_secret
from gateway.credentials import ConnectionCredentials
from gateway.logging import get_logger
from gateway.model import Protocol
from gateway.offload import run_blocking
from gateway.services import GatewayContext, Service
from gateway.settings.as2 import As2Plan, listen_address, plan_for
from protocols.as2.endpoint import As2Endpoint, As2Listener, server_tls
from protocols.as2.partners import Partners
from protocols.as2.sender import MdnCourier, MdnWaiters

__all__ = ["admin_routes", "factory"]

log = get_logger(__name__)


def _server_tls(plan: As2Plan) -> ssl.SSLContext | None:
    """The listener's TLS: the server certificate, else the client-type one (domain.md §4)."""
    pair = plan.conn.certificates.server or plan.conn.certificates.client
    try:
        if pair is None:
            raise ValueError("an HTTPS listener needs a server or client certificate")
        return server_tls(certificate=pair.certificate, key=pair.key, password=key_secret(pair),
                          client_auth=plan.settings.tls_client_auth,
                          anchors_pem=plan.anchors_pem)  # fmt: skip
    except (OSError, ValueError, ssl.SSLError) as exc:
        log.error("as2.listener_tls_unusable", connection=plan.name, reason=str(exc))
        return None


# --- the daemon's entry points ------------------------------------------------------------------


def _plans(context: GatewayContext) -> list[As2Plan]:
    return [
        plan_for(view.config, context.credentials.get(view.config.name)
                 or ConnectionCredentials(view.config.name))
        for view in context.registry
        if view.config.protocol is Protocol.AS2
    ]  # fmt: skip


def _endpoint(
    context: GatewayContext,
    plans: Sequence[As2Plan],
    *,
    courier: MdnCourier | None = None,
    waiters: MdnWaiters | None = None,
) -> As2Endpoint:
    signed = {plan.name: plan.settings.signed_mdn for plan in plans}
    journal = StoreJournal(context.store, signed_mdn=lambda name: signed.get(name, True),
                           clock=context.clock)  # fmt: skip
    partners = Partners(plan.profile for plan in plans)
    for (as2_from, as2_to), names in partners.ambiguous.items():
        log.error("as2.ambiguous_names", as2_from=as2_from, as2_to=as2_to, connections=names)
    return As2Endpoint(partners=partners, inbox=context.inbox_port, journal=journal,
                       offload=run_blocking, observe=observe, clock=context.clock,
                       courier=courier, waiters=waiters)  # fmt: skip


def _listeners(
    context: GatewayContext, plans: Sequence[As2Plan], courier: MdnCourier, waiters: MdnWaiters
) -> list[Service]:
    """One listener per bound host:port; its connections are told apart by AS2 names."""
    groups: dict[tuple[str, int], list[As2Plan]] = {}
    for plan in plans:
        host, port, _ = listen_address(plan.conn, plan.settings)
        groups.setdefault((host, port), []).append(plan)
    listeners: list[Service] = []
    for (host, port), group in groups.items():
        first = group[0]
        schemes = {listen_address(p.conn, p.settings)[2] for p in group}
        if len(schemes) > 1:
            log.error("as2.listener_conflict", host=host, port=port,
                      connections=[p.name for p in group], using=first.name)  # fmt: skip
        tls = None
        if listen_address(first.conn, first.settings)[2] == "https":
            tls = _server_tls(first)
            if tls is None:
                continue
        endpoint = _endpoint(context, group, courier=courier, waiters=waiters)
        listeners.append(As2Listener(endpoint, host=host, port=port, tls=tls,
                                     path=first.settings.path,
                                     mdn_path=first.settings.mdn_path))  # fmt: skip
    return listeners


def factory(context: GatewayContext) -> Sequence[Service]:
    """A courier, a listener per bound address, and an outbox worker per sending connection."""
    plans = _plans(context)
    if not plans:
        return []
    by_name = {plan.name: plan for plan in plans}
    tls_cache: dict[str, ssl.SSLContext] = {}

    def tls_for(connection: str) -> ssl.SSLContext | None:
        if connection not in tls_cache and connection in by_name:
            with contextlib.suppress(OSError, ValueError, ssl.SSLError):
                tls_cache[connection] = client_tls_for(by_name[connection])
        return tls_cache.get(connection)

    waiters, courier = MdnWaiters(), MdnCourier(tls_for=tls_for)
    services: list[Service] = [courier, *_listeners(context, plans, courier, waiters)]
    for plan in plans:
        if plan.send is None:
            log.error("as2.cannot_send", connection=plan.name, reason="no client key to sign with")
        else:
            services.append(As2Worker(context, plan, waiters))
    return services


def admin_routes(app: web.Application) -> None:
    """POST /as2/mdn on the admin server: asynchronous MDNs for our messages.

    The endpoint (plans, certificate references, partner table) is built once per gateway
    context, not per request; a reload brings a new context, hence a new endpoint.
    """
    built: list[tuple[GatewayContext, As2Endpoint]] = []  # the context in force, its endpoint

    async def receive_mdn(request: web.Request) -> web.StreamResponse:
        context: GatewayContext = current_context(request)
        if not built or built[0][0] is not context:
            built[:] = [(context, _endpoint(context, _plans(context)))]
        return await built[0][1].receive_mdn(request)

    app.router.add_post("/as2/mdn", receive_mdn)
