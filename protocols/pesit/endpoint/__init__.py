"""PeSIT over TLS on asyncio: the adapters around the sans-IO core of `protocols.pesit`.

`session` drives one core over a stream; `listener`, `server` and `serving` are our server
(AIFE pushes flows to us, or pulls those waiting for it); `requester` pushes to AIFE's server,
`outbound` makes that push survive breaks and restarts, `puller` pulls return flows from it;
`receiving`/`sending` move a file's articles between the core and the disk; `spool` keeps what
a restart needs; `tls` builds the contexts; `ports` holds what the gateway injects.

A package rather than one `endpoint.py`: these are the I/O adapters (asyncio, ssl, files), kept
apart from the sans-IO core modules beside them.
"""

from protocols.pesit.endpoint.listener import PesitListener
from protocols.pesit.endpoint.ports import (
    Admission,
    NullObserver,
    Observer,
    OutgoingFile,
    OutgoingFiles,
    Peer,
    ServerProfile,
)
from protocols.pesit.endpoint.puller import pull
from protocols.pesit.endpoint.requester import (
    PesitPermanentError,
    PesitTransientError,
    PushResult,
    push,
)
from protocols.pesit.endpoint.spool import Journal, PushCheckpoint, Spool
from protocols.pesit.endpoint.tls import client_context, server_context

__all__ = [
    "Admission",
    "Journal",
    "NullObserver",
    "Observer",
    "OutgoingFile",
    "OutgoingFiles",
    "Peer",
    "PesitListener",
    "PesitPermanentError",
    "PesitTransientError",
    "PushCheckpoint",
    "PushResult",
    "ServerProfile",
    "Spool",
    "client_context",
    "pull",
    "push",
    "server_context",
]
