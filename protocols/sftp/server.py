"""The SFTP listener on asyncssh: authentication, session limits, idle timeout, drain on stop.

Each SSH connection gets a `_Connection` (asyncssh's `SSHServer` hooks): the username names an
account, and only that account's public keys, its X.509 certificates per RFC 6187 (see
`x509auth`), or its password (when the listener explicitly enables passwords) let it in. An
account whose certificates are `only` refuses plain keys. Limits are checked at
authentication: sessions per account and in total. After login, every SFTP channel is a
`JailSession` over that account's virtual jail. No shell, exec, scp, port or agent
forwarding is offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections import Counter
from collections.abc import Coroutine
from typing import Any

import asyncssh
import structlog
from asyncssh.public_key import SSHX509CertificateChain

from protocols.errors import RaccordError
from protocols.ports import InboxPort
from protocols.sftp.keys import load_or_create_host_key, wire
from protocols.sftp.ports import Account, AuthFailure, ListenerParams, Mailbox, SftpObserver
from protocols.sftp.session import JailSession, SessionContext
from protocols.sftp.x509auth import CertificateGate, CertificateJudge, judges, trusted_union

_log = structlog.get_logger(module=__name__)
ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)


class ListenerError(RaccordError):
    """The listener could not start (port taken, host key unusable)."""


class _Connection(asyncssh.SSHServer):
    """asyncssh's per-connection hooks: who logs in, and the session it gets."""

    def __init__(self, listener: SftpListener) -> None:
        self._listener = listener
        self._conn: asyncssh.SSHServerConnection | None = None
        self.account: Account | None = None
        self._failure: AuthFailure | None = None
        self._method = ("", "")  # how the login was accepted, and with which certificate
        self._last_seen = time.monotonic()
        self._peer_address = "unknown"
        self._watchdog: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername")  # kept: gone from the transport once it is lost
        self._peer_address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._listener.admit(self):
            conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, "too many sessions")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._listener.release(self)
        if self.account is None and self._failure is not None:
            self._listener.observer.auth_failed(self._failure)
            _log.warning("sftp.auth_failed", reason=self._failure, peer=self._peer())

    def _peer(self) -> str:
        return self._peer_address

    def begin_auth(self, username: str) -> bool:
        assert self._conn is not None
        self._conn.set_authorized_keys(
            CertificateGate(username, lambda chain: self._validate_x509(username, chain))
        )
        return True  # always authenticate, so unknown names are not revealed

    def password_auth_supported(self) -> bool:
        return self._listener.params.password_login

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        account = self._listener.accounts.get(username)
        if account is None:
            return self._fail("unknown-account")
        if wire(key) not in account.keys:
            return self._fail("unknown-key")
        if (revoked := account.revoked_keys.get(wire(key))) is not None:
            _log.info("sftp.key_refused", account=username, reason="x509-revoked", detail=revoked)
            return self._fail("x509-revoked")
        if account.x509 is not None and account.x509.only:
            return self._fail("x509-required")
        return self._accepted(account, "publickey")

    def _validate_x509(self, username: str, chain: SSHX509CertificateChain) -> bool:
        account = self._listener.accounts.get(username)
        if account is None:
            return self._fail("unknown-account")
        judge = self._listener.judges.get(username)
        if judge is None:
            return self._fail("x509-unknown-certificate")
        verdict = judge.judge(chain)
        if verdict.failure is not None:
            detail = verdict.detail
            _log.info("sftp.x509_refused", account=username, reason=verdict.failure, detail=detail)
            return self._fail(verdict.failure)
        if not self._accepted(account, "x509", verdict.detail):
            return False
        self._failure = "x509-bad-signature"  # asyncssh checks the signature next
        return True

    def validate_password(self, username: str, password: str) -> bool:
        account = self._listener.accounts.get(username)
        if account is None or account.password is None:
            return self._fail("unknown-account")
        if account.x509 is not None and account.x509.only:
            return self._fail("x509-required")
        if not hmac.compare_digest(password.encode("utf-8"), account.password):
            return self._fail("bad-password")
        return self._accepted(account, "password")

    def _accepted(self, account: Account, method: str, detail: str = "") -> bool:
        """Within the account's session limit: remember how it got in, for the audit log."""
        if self._listener.sessions_of(account.name) >= account.max_sessions:
            return self._fail("session-limit")
        self._method = (method, detail)
        return True

    def _fail(self, reason: AuthFailure) -> bool:
        self._failure = reason
        return False

    def auth_completed(self) -> None:
        assert self._conn is not None
        conn = self._conn
        account = self._listener.accounts[conn.get_extra_info("username")]
        if not self._listener.open_session(account.name, account.max_sessions):
            self._failure = "session-limit"
            conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, "too many sessions")
            return
        self.account = account
        self._listener.observer.session_opened(account.name)
        method, certificate = self._method
        _log.info(
            "sftp.session_opened",
            account=account.name,
            peer=self._peer(),
            auth=method,
            certificate=certificate or None,
        )
        self._watchdog = asyncio.ensure_future(self._idle_watch())

    def touch(self) -> None:
        self._last_seen = time.monotonic()

    async def _idle_watch(self) -> None:
        limit = self._listener.params.limits.idle_timeout
        while True:
            idle = time.monotonic() - self._last_seen
            if idle >= limit:
                break
            await asyncio.sleep(limit - idle)
        if self._conn is not None and self.account is not None:
            _log.info("sftp.idle_timeout", account=self.account.name, seconds=limit)
            self._conn.disconnect(asyncssh.DISC_BY_APPLICATION, "idle timeout")

    def session(self, chan: asyncssh.SSHServerChannel[bytes]) -> JailSession:
        assert self.account is not None
        listener = self._listener
        context = SessionContext(
            account=self.account,
            inbox=listener.inbox,
            mailbox=listener.mailbox,
            observer=listener.observer,
            limits=listener.params.limits,
            temp_suffixes=listener.params.temp_suffixes,
            touch=self.touch,
            uploads_changed=listener.uploads_changed,
            spawn=listener.spawn,
        )
        return JailSession(chan, context)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class SftpListener:
    """One listening socket with its accounts; `start()` then `stop(timeout=…)`."""

    def __init__(
        self,
        params: ListenerParams,
        *,
        inbox: InboxPort,
        mailbox: Mailbox,
        observer: SftpObserver,
    ) -> None:
        self.params = params
        self.inbox = inbox
        self.mailbox = mailbox
        self.observer = observer
        self.accounts = {account.name: account for account in params.accounts}
        self.judges: dict[str, CertificateJudge] = {}  # accounts with RFC 6187 logins (start)
        self._server: asyncssh.SSHAcceptor | None = None
        self._connections: set[_Connection] = set()
        self._sessions: Counter[str] = Counter()
        self._uploads = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return self.params.name

    @property
    def ready(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._server is None:
            raise ListenerError(f"{self.params.name} is not listening")
        return int(self._server.get_port())

    @property
    def sessions(self) -> int:
        return sum(self._sessions.values())

    @property
    def busy(self) -> bool:
        """Uploads in flight or aborts still cleaning up (what `stop` waits for)."""
        return bool(self._uploads or self._background)

    async def start(self) -> None:
        """Load (or create) the host key, prepare the certificate checks, then listen."""
        loop = asyncio.get_running_loop()
        try:
            host_key = await loop.run_in_executor(
                None, load_or_create_host_key, self.params.host_key
            )
        except RaccordError as exc:
            raise ListenerError(f"{self.params.name}: {exc}") from exc
        try:
            self.judges = judges((account.name, account.x509) for account in self.params.accounts)
            trusted = trusted_union(self.judges)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise ListenerError(f"{self.params.name}: a trust anchor is unusable: {exc}") from exc
        try:
            self._server = await asyncssh.create_server(
                lambda: _Connection(self),
                self.params.host,
                self.params.port,
                server_host_keys=[host_key],
                sftp_factory=self._session,
                sftp_version=3,
                allow_scp=False,
                agent_forwarding=False,
                x11_forwarding=False,
                allow_pty=False,
                login_timeout=self.params.limits.login_timeout,
                x509_trusted_certs=trusted,
                x509_trusted_cert_paths=[],
                x509_purposes="any",  # see x509auth: the key usage was checked at load
                encryption_algs=list(ENCRYPTION_ALGS),
                keepalive_interval=60,
            )
        except OSError as exc:
            where = f"{self.params.host}:{self.params.port}"
            raise ListenerError(f"{self.params.name} cannot listen on {where}: {exc}") from exc
        _log.info("sftp.listening", listener=self.params.name, port=self.port)

    def _session(self, chan: asyncssh.SSHServerChannel[bytes]) -> JailSession:
        owner = chan.get_connection().get_owner()
        assert isinstance(owner, _Connection)
        return owner.session(chan)

    async def stop(self, *, timeout: float) -> None:
        """Stop accepting, let uploads in flight finish (up to `timeout`), then disconnect."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        waits = [asyncio.ensure_future(c.closed.wait()) for c in self._connections]
        for connection in list(self._connections):
            connection.close()
        pending = {*waits, *self._background}
        if pending:
            await asyncio.wait(pending, timeout=max(timeout, 1.0))
        for wait in waits:
            wait.cancel()

    # --- bookkeeping used by connections and sessions ------------------------------------------

    def admit(self, connection: _Connection) -> bool:
        """A new TCP connection; False when the listener is at its total session limit."""
        if len(self._connections) >= self.params.limits.max_sessions:
            self.observer.auth_failed("session-limit")
            return False
        self._connections.add(connection)
        return True

    def release(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        if connection.account is not None:
            self._sessions[connection.account.name] -= 1
            self.observer.session_closed(connection.account.name)

    def sessions_of(self, account: str) -> int:
        return self._sessions[account]

    def open_session(self, account: str, limit: int) -> bool:
        if self._sessions[account] >= limit:
            return False
        self._sessions[account] += 1
        return True

    def uploads_changed(self, delta: int) -> None:
        self._uploads += delta
        if self._uploads:
            self._idle.clear()
        else:
            self._idle.set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            _log.error("sftp.background_failed", error=repr(error))
