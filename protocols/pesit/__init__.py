"""PESIT protocol: a sans-IO core plus its asyncio endpoint.

Core modules (pure, no I/O, no clock): `diagnostics` (PI 2 codes and errors), `pi` (parameter
units), `fpdu` (the FPDU codec), `framing` (NSDU prefix, detection, pre-connection), `state`
(the §7 transition tables), `events`, `settings`, `negotiation`, `transfer` (articles, sync
points), `connection` (shared machinery), `requester` (`PesitRequester`), `server`
(`PesitServer`).
"""
