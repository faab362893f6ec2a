"""An embedded aiosmtpd server for what Postfix with Dovecot SASL cannot offer here.

Dovecot 2.3 has no SCRAM-*-PLUS, and Postfix passes neither channel-binding
data nor the client certificate to it, so EXTERNAL cannot work through it
either (see ``submission.py``). This server implements, in the test tree and
independently of smtpx's own client code:

- **SCRAM-SHA-1, SCRAM-SHA-256** and their **-PLUS** variants (RFC 5802,
  RFC 7677), with the server signature sent as the last challenge, the GS2
  channel-binding flag checked (RFC 5802 section 6: a client saying ``y`` to a
  server that offers -PLUS is refused as a downgrade), and the channel-binding
  data compared with this side of the TLS connection:

  - ``tls-server-end-point`` (RFC 5929 section 4.1): a hash of the server
    certificate, SHA-256 unless its signature uses a stronger hash;
  - ``tls-unique`` (RFC 5929 section 3.1) under TLS 1.2 only (RFC 9266
    section 3 forbids it with TLS 1.3);
  - ``tls-exporter`` (RFC 9266) is refused as unsupported: Python's ``ssl``
    module cannot export keying material.

- **EXTERNAL** (RFC 4422 appendix A) with a client certificate: the server asks
  for one (``CERT_OPTIONAL``) and verifies it against the test CA; the
  identity is the certificate's e-mail subject alternative name (or its common
  name); the authorization identity the client sends must be empty or equal
  to it.

AUTH is offered only under TLS (``port`` with STARTTLS, ``smtps_port`` with
implicit TLS). Every attempt is recorded in ``attempts``, so a test can check
which mechanism and channel binding the client really used. Mail is accepted
and discarded.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import shutil
import socket
import ssl
import threading
import unicodedata
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

# aiosmtpd and trustme (which brings cryptography) are in the test extra.
from aiosmtpd.smtp import SMTP, AuthResult, auth_mechanism
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ._common import TLSFiles, make_tls, make_workdir

__all__ = ["AuthAttempt", "EmbeddedSaslServer"]

logging.getLogger("mail.log").addHandler(logging.NullHandler())

HOST = "127.0.0.1"
USERS = {
    "alice@example.test": "s3cret-Alice",
    "jöhn@example.test": "jöhns-pässwörd-ñ",
}
# The identity in the client certificate that EXTERNAL maps to.
CERT_USER = "alice@example.test"
SCRAM_HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}
MECHANISMS = (
    "SCRAM-SHA-1",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-256-PLUS",
    "EXTERNAL",
)
CHANNEL_BINDINGS = ("tls-server-end-point", "tls-unique")
# RFC 7677 section 4: at least 4096 iterations for SCRAM-SHA-256.
ITERATIONS = 4096
THREAD_TIMEOUT = 10.0


@dataclass(frozen=True)
class AuthAttempt:
    """One AUTH exchange as the server saw it."""

    mechanism: str
    user: str | None  # the authentication identity the client named
    channel_binding: str | None  # the cb-name for -PLUS, None otherwise
    success: bool
    error: str = ""  # the RFC 5802 server-error value, or a reason


class _Refusal(Exception):
    """Ends an exchange with 535; ``str()`` is the reason recorded and replied."""


def _end_point_hash(cert_pem: bytes) -> bytes:
    cert = x509.load_pem_x509_certificate(cert_pem)
    algorithm = cert.signature_hash_algorithm
    name = algorithm.name if algorithm is not None else "sha256"
    # RFC 5929 section 4.1: MD5 and SHA-1 are replaced by SHA-256.
    if name in ("md5", "sha1"):
        name = "sha256"
    return hashlib.new(name, cert.public_bytes(Encoding.DER)).digest()


def _saslname(value: str) -> str:
    # RFC 5802 section 5.1: ',' and '=' travel as =2C and =3D; any other '=' is bad.
    out, rest = [], value
    while "=" in rest:
        head, _, tail = rest.partition("=")
        code, rest = tail[:2], tail[2:]
        if code not in ("2C", "3D"):
            raise _Refusal("invalid-encoding")
        out += [head, "," if code == "2C" else "="]
    return "".join(out) + rest


def _attributes(message: str) -> list[tuple[str, str]]:
    pairs = []
    for part in message.split(","):
        key, equals, value = part.partition("=")
        if len(key) != 1 or not equals:
            raise _Refusal("invalid-encoding")
        pairs.append((key, value))
    return pairs


class _Session(SMTP):
    """aiosmtpd's SMTP with SCRAM (plain and -PLUS) and EXTERNAL."""

    def __init__(self, owner: EmbeddedSaslServer, *, implicit_tls: bool, **kwargs: Any) -> None:
        self.owner = owner
        super().__init__(
            _Sink(),
            hostname="localhost",
            # aiosmtpd only knows TLS it started itself (STARTTLS); on the
            # implicit-TLS port every byte is already encrypted.
            auth_require_tls=not implicit_tls,
            auth_exclude_mechanism=["PLAIN", "LOGIN"],
            **kwargs,
        )

    # -- helpers -----------------------------------------------------------

    def _ssl_object(self) -> ssl.SSLObject | None:
        transport = self.transport
        return None if transport is None else transport.get_extra_info("ssl_object")

    async def _first(self, args: list[str]) -> bytes | None:
        """The initial response (RFC 4954 section 4), or the reply to an empty challenge."""
        if len(args) > 1:
            if args[1] == "=":
                return b""
            try:
                return base64.b64decode(args[1], validate=True)
            except ValueError:
                await self.push("501 5.5.2 Can't decode base64")
                return None
        reply = await self.challenge_auth(b"")
        return reply if isinstance(reply, bytes) else None

    def _record(self, attempt: AuthAttempt) -> None:
        self.owner._record(attempt)

    # -- SCRAM -------------------------------------------------------------

    async def _scram(self, args: list[str], mechanism: str) -> AuthResult:
        plus = mechanism.endswith("-PLUS")
        family = mechanism.removesuffix("-PLUS")
        user: str | None = None
        cb_name: str | None = None
        try:
            first = await self._first(args)
            if first is None:
                return AuthResult(success=False, handled=True)
            text = first.decode("utf-8")
            flag, authzid, bare = [*text.split(",", 2), "", ""][:3]
            gs2_header = f"{flag},{authzid},"
            if authzid and not authzid.startswith("a="):
                raise _Refusal("invalid-encoding")
            attributes = _attributes(bare)
            if [key for key, _ in attributes[:2]] != ["n", "r"]:
                raise _Refusal("invalid-encoding")
            if any(key == "m" for key, _ in attributes):
                raise _Refusal("extensions-not-supported")
            user = _saslname(attributes[0][1])
            client_nonce = attributes[1][1]
            if authzid and _saslname(authzid[2:]) != user:
                raise _Refusal("other-error")  # no proxy authorization here
            if flag.startswith("p="):
                cb_name = flag[2:]
                if not plus:
                    raise _Refusal("channel binding requested with a non-PLUS mechanism")
                cb_data = self._channel_binding(cb_name)
            elif flag in ("n", "y"):
                if plus:
                    raise _Refusal("a -PLUS mechanism needs the p= flag")
                # RFC 5802 section 6: "y" says the client could bind but thinks
                # the server cannot; this server can, so it is a downgrade.
                if flag == "y":
                    raise _Refusal("server-does-support-channel-binding")
                cb_data = b""
            else:
                raise _Refusal("invalid-encoding")
            password = self.owner.users.get(user)
            if password is None:
                raise _Refusal("unknown-user")

            name = SCRAM_HASHES[family]
            salt = os.urandom(16)
            nonce = client_nonce + base64.b64encode(os.urandom(18)).decode()
            server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={ITERATIONS}"
            final = await self.challenge_auth(server_first)
            if not isinstance(final, bytes):
                return AuthResult(success=False, handled=True)
            final_text = final.decode("utf-8")
            without_proof, _, proof_b64 = final_text.rpartition(",p=")
            final_attributes = _attributes(without_proof)
            if [key for key, _ in final_attributes[:2]] != ["c", "r"] or not proof_b64:
                raise _Refusal("invalid-encoding")
            expected_c = base64.b64encode(gs2_header.encode() + cb_data).decode()
            if final_attributes[0][1] != expected_c:
                raise _Refusal("channel-bindings-dont-match")
            if final_attributes[1][1] != nonce:
                raise _Refusal("invalid-proof")  # a nonce mismatch is a failed proof

            normalised = unicodedata.normalize("NFKC", password).encode()
            salted = hashlib.pbkdf2_hmac(name, normalised, salt, ITERATIONS)
            client_key = hmac.digest(salted, b"Client Key", name)
            stored_key = hashlib.new(name, client_key).digest()
            auth_message = f"{bare},{server_first},{without_proof}".encode()
            signature = hmac.digest(stored_key, auth_message, name)
            try:
                proof = base64.b64decode(proof_b64, validate=True)
            except ValueError:
                raise _Refusal("invalid-encoding") from None
            if len(proof) != len(signature):
                raise _Refusal("invalid-proof")
            recovered = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
            if not hmac.compare_digest(hashlib.new(name, recovered).digest(), stored_key):
                raise _Refusal("invalid-proof")
            server_key = hmac.digest(salted, b"Server Key", name)
            verifier = base64.b64encode(hmac.digest(server_key, auth_message, name)).decode()
            # RFC 4954 has no data with 235: the server-final goes in a 334 and
            # the client answers it with an empty line.
            ack = await self.challenge_auth(f"v={verifier}")
            if not isinstance(ack, bytes):
                return AuthResult(success=False, handled=True)
            if ack:
                raise _Refusal("non-empty reply to the server-final message")
        except (_Refusal, UnicodeDecodeError) as exc:
            reason = str(exc) if isinstance(exc, _Refusal) else "invalid-encoding"
            self._record(AuthAttempt(mechanism, user, cb_name, False, reason))
            return AuthResult(
                success=False, handled=False, message=f"535 5.7.8 SCRAM failed: {reason}"
            )
        self._record(AuthAttempt(mechanism, user, cb_name, True))
        return AuthResult(success=True, auth_data=user)

    def _channel_binding(self, cb_name: str) -> bytes:
        ssl_object = self._ssl_object()
        if ssl_object is None:
            raise _Refusal("channel binding needs TLS")
        if cb_name == "tls-server-end-point":
            return self.owner._end_point
        if cb_name == "tls-unique" and ssl_object.version() == "TLSv1.2":
            data = ssl_object.get_channel_binding("tls-unique")
            if data:
                return data
        raise _Refusal("unsupported-channel-binding-type")

    @auth_mechanism("SCRAM-SHA-1")
    async def auth_scram_sha_1(self, _: SMTP, args: list[str]) -> AuthResult:
        return await self._scram(args, "SCRAM-SHA-1")

    @auth_mechanism("SCRAM-SHA-1-PLUS")
    async def auth_scram_sha_1_plus(self, _: SMTP, args: list[str]) -> AuthResult:
        return await self._scram(args, "SCRAM-SHA-1-PLUS")

    @auth_mechanism("SCRAM-SHA-256")
    async def auth_scram_sha_256(self, _: SMTP, args: list[str]) -> AuthResult:
        return await self._scram(args, "SCRAM-SHA-256")

    @auth_mechanism("SCRAM-SHA-256-PLUS")
    async def auth_scram_sha_256_plus(self, _: SMTP, args: list[str]) -> AuthResult:
        return await self._scram(args, "SCRAM-SHA-256-PLUS")

    # -- EXTERNAL ----------------------------------------------------------

    @auth_mechanism("EXTERNAL")
    async def auth_external(self, _: SMTP, args: list[str]) -> AuthResult:
        authzid_bytes = await self._first(args)
        if authzid_bytes is None:
            return AuthResult(success=False, handled=True)
        ssl_object = self._ssl_object()
        cert = ssl_object.getpeercert() if ssl_object is not None else None
        identity = _cert_identity(cert) if cert else None
        try:
            authzid = authzid_bytes.decode("utf-8")
        except UnicodeDecodeError:
            authzid = None
        if identity is None:
            reason = "no verified client certificate"
        elif authzid is None or (authzid and authzid != identity):
            reason = f"certificate is for {identity!r}, not {authzid!r}"
        else:
            self._record(AuthAttempt("EXTERNAL", identity, None, True))
            return AuthResult(success=True, auth_data=identity)
        self._record(AuthAttempt("EXTERNAL", authzid or None, None, False, reason))
        return AuthResult(
            success=False, handled=False, message=f"535 5.7.8 EXTERNAL failed: {reason}"
        )


def _cert_identity(cert: Mapping[str, Any]) -> str | None:
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "email":
            return str(value)
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class _Sink:
    """aiosmtpd handler: accept every message and drop it (the tests are about AUTH)."""

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        return "250 2.0.0 OK: discarded"


class EmbeddedSaslServer:
    """SCRAM-*-PLUS and EXTERNAL on loopback; ``EmbeddedSaslServer.start()`` and ``stop()``.

    ``client_context()`` trusts the test CA; ``client_context(certificate=True)``
    also presents the client certificate for ``cert_user`` (EXTERNAL).
    """

    name = "embedded-sasl"
    mechanisms = MECHANISMS
    channel_bindings = CHANNEL_BINDINGS
    users = USERS
    cert_user = CERT_USER

    def __init__(self, workdir: Path, tls: TLSFiles) -> None:
        self.workdir = workdir
        self.tls = tls
        self.host = HOST
        self.port = 0
        self.smtps_port = 0
        self.client_cert_file = workdir / "conf" / "client-cert.pem"
        self.client_key_file = workdir / "conf" / "client-key.pem"
        self.attempts: list[AuthAttempt] = []
        self._lock = threading.Lock()
        self._end_point = _end_point_hash(tls.cert_file.read_bytes())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._sessions: weakref.WeakSet[_Session] = weakref.WeakSet()
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(tls.cert_file, tls.key_file)
        # Ask for a client certificate, verified against the test CA, but let
        # clients without one in: they are the SCRAM tests.
        self._context.load_verify_locations(cafile=str(tls.ca_file))
        self._context.verify_mode = ssl.CERT_OPTIONAL

    @staticmethod
    def check_installed() -> str:
        """Where aiosmtpd lives (imported above: a test dependency, always there)."""
        import aiosmtpd

        return str(Path(aiosmtpd.__file__).parent)

    @classmethod
    def start(cls) -> Self:
        workdir = make_workdir(cls.name)
        conf = workdir / "conf"
        conf.mkdir(mode=0o755)
        tls = make_tls(conf)
        server = cls(workdir, tls)
        server._issue_client_cert()
        server._serve()
        return server

    def _issue_client_cert(self) -> None:
        import trustme

        # make_tls keeps no CA key on disk: a second CA signs the client
        # certificate, and the server trusts both.
        ca = trustme.CA(organization_name="smtpx integration tests (clients)")
        leaf = ca.issue_cert(CERT_USER, common_name=CERT_USER)
        self.client_cert_file.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(self.client_key_file))
        self.client_ca_file = self.workdir / "conf" / "client-ca.pem"
        ca.cert_pem.write_to_path(str(self.client_ca_file))
        self._context.load_verify_locations(cafile=str(self.client_ca_file))

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        sockets = [socket.create_server((HOST, 0)) for _ in range(2)]
        try:
            self._servers = [
                loop.run_until_complete(
                    loop.create_server(lambda: self._session(True), sock=sockets[0])
                ),
                loop.run_until_complete(
                    loop.create_server(
                        lambda: self._session(False), sock=sockets[1], ssl=self._context
                    )
                ),
            ]
        except BaseException:
            for sock in sockets:
                sock.close()
            loop.close()
            raise
        self.port = sockets[0].getsockname()[1]
        self.smtps_port = sockets[1].getsockname()[1]
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
        self._thread.start()

    def _session(self, starttls: bool) -> _Session:
        session = _Session(
            self,
            implicit_tls=not starttls,
            tls_context=self._context if starttls else None,
            loop=asyncio.get_running_loop(),
        )
        self._sessions.add(session)
        return session

    def _record(self, attempt: AuthAttempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    def attempts_snapshot(self) -> list[AuthAttempt]:
        with self._lock:
            return list(self.attempts)

    def client_context(self, *, certificate: bool = False) -> ssl.SSLContext:
        """A verifying client context trusting the test CA (plus the client cert if asked)."""
        context = self.tls.client_context()
        if certificate:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        return context

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file

    def stop(self, *, keep_workdir: bool = False) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(THREAD_TIMEOUT)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(THREAD_TIMEOUT)
                loop.close()
                self._loop = self._thread = None
        if not keep_workdir and os.environ.get("SMTPX_KEEP_SERVER_DIRS") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for session in list(self._sessions):
            transport = session.transport
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()
        for server in self._servers:
            await server.wait_closed()
        this = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not this]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(10):
            await asyncio.sleep(0)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
