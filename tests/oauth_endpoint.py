"""A local OAuth2 authorization server for tests: issues tokens and introspects them.

It plays three providers at once, over https with a self-signed certificate:
- Microsoft Entra ID: `/{tenant}/v2.0/.well-known/openid-configuration` and the client
  credentials grant at `/{tenant}/oauth2/v2.0/token` (client secret, or a client assertion
  JWT signed with the app's certificate key and checked against that certificate).
- Google: the JWT-bearer grant at `/google/token` that google-auth uses for a service account;
  the JWT's signature is checked with the service account's public key, the scope against
  the domain-wide delegation granted here.
- Any other provider: the refresh-token grant at `/generic/token`.
Error answers are shaped like the real providers' (AADSTS codes, `unauthorized_client`, …).

`/introspect` (RFC 7662, plain http on loopback) tells Dovecot's oauth2 passdb and the SMTP
sink whether a token is active and whose mailbox it opens; a token is active until it expires
(`lifetime` seconds) or `revoke()` is called. Nothing is mocked on the client side: MSAL,
google-auth and Authlib talk to this server as they would to the real ones.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.servers import DEFAULT_USER, LOOPBACK, free_port, make_self_signed_cert

TENANT = "5f2b6c1e-4d7a-4b0e-9c3f-4dd0c0ffee01"
CLIENT_ID = "0e3f1a2b-mailbot-app"
EXCHANGE_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"


@dataclass
class Issued:
    token: str
    mailbox: str
    grant: str
    expires_at: float
    revoked: bool = False


@dataclass
class TokenEndpoint:
    """The server; `base_url` (https) issues tokens, `introspection_url` (http) checks them."""

    directory: Path
    lifetime: float = 3600.0
    mailbox: str = DEFAULT_USER  # the mailbox the app was given (Add-MailboxPermission)
    client_secret: str = field(default_factory=lambda: "cs~" + secrets.token_urlsafe(24))
    refresh_token: str = field(default_factory=lambda: "rt." + secrets.token_urlsafe(32))
    delegated_scopes: set[str] = field(default_factory=lambda: {GOOGLE_SCOPE})
    issued: list[Issued] = field(default_factory=list)
    introspected: list[str] = field(default_factory=list)  # tokens asked about, in order
    requests: list[str] = field(default_factory=list)  # request paths, in order

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        pair = make_self_signed_cert(self.directory / "tls")
        if pair is None:
            pytest.skip("openssl is needed for the https token endpoint")
        cert, key = pair
        self.cafile = str(cert)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self._lock = threading.Lock()
        self._https = _serve(self, context)
        self._http = _serve(self, None)
        self.base_url = f"https://{LOOPBACK}:{self._https.server_port}"
        self.introspection_url = f"http://{LOOPBACK}:{self._http.server_port}/introspect"
        self.app_key, self.app_certificate_file = _app_certificate(self.directory)
        self.service_account_file, self._service_key = self._write_service_account()

    # -- set-up -------------------------------------------------------------------------
    def _write_service_account(self) -> tuple[Path, rsa.RSAPrivateKey]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path = self.directory / "service-account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "mailbot-test",
                    "private_key_id": secrets.token_hex(20),
                    "private_key": pem,
                    "client_email": "mailbot@mailbot-test.iam.gserviceaccount.com",
                    "client_id": "104857600000000000001",
                    "token_uri": f"{self.base_url}/google/token",
                }
            )
        )
        return path, key

    def close(self) -> None:
        for server in (self._https, self._http):
            server.shutdown()
            server.server_close()

    # -- control ------------------------------------------------------------------------
    def revoke(self, token: str | None = None) -> None:
        """Revoke one token, or every token issued so far."""
        with self._lock:
            for issued in self.issued:
                if token is None or issued.token == token:
                    issued.revoked = True

    def tokens(self) -> list[str]:
        with self._lock:
            return [i.token for i in self.issued]

    def leak_strings(self) -> list[str]:
        """Every secret a leak check should look for (tokens included)."""
        key_pem = self.app_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        key_body = "".join(key_pem.splitlines()[1:-1])
        service_key = json.loads(self.service_account_file.read_text())["private_key"]
        return [
            self.client_secret,
            self.refresh_token,
            key_body[:64],
            "".join(service_key.splitlines()[1:-1])[:64],
            *self.tokens(),
        ]

    # -- the grants ---------------------------------------------------------------------
    def _issue(self, mailbox: str, grant: str) -> dict[str, Any]:
        token = "at." + secrets.token_urlsafe(32)
        with self._lock:
            self.issued.append(Issued(token, mailbox, grant, time.time() + self.lifetime))
        return {"access_token": token, "token_type": "Bearer", "expires_in": int(self.lifetime)}

    def discovery(self, tenant: str) -> tuple[int, dict[str, Any]]:
        if tenant != TENANT:
            return 400, {
                "error": "invalid_tenant",
                "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check to make"
                " sure you have the correct tenant ID and are signing into the correct cloud.",
            }
        base = f"{self.base_url}/{TENANT}"
        return 200, {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
        }

    def microsoft_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("client_id") != CLIENT_ID:
            return 400, {
                "error": "unauthorized_client",
                "error_description": f"AADSTS700016: Application with identifier"
                f" '{form.get('client_id')}' was not found in the directory '4Dustry'.",
            }
        if "client_assertion" in form:
            audience = f"{self.base_url}/{TENANT}/oauth2/v2.0/token"
            try:
                jwt.decode(
                    form["client_assertion"],
                    self.app_key.public_key(),
                    algorithms=["PS256", "RS256"],
                    audience=audience,
                    issuer=CLIENT_ID,
                )
            except jwt.PyJWTError:
                return 401, {
                    "error": "invalid_client",
                    "error_description": "AADSTS700027: The certificate with identifier used to"
                    " sign the client assertion is not registered on application.",
                }
        elif form.get("client_secret") != self.client_secret:
            return 401, {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the"
                " secret being sent in the request is the client secret value, not the client"
                f" secret ID, for a secret added to app '{CLIENT_ID}'.",
            }
        if form.get("scope", "").split() != [EXCHANGE_SCOPE]:
            return 400, {"error": "invalid_scope", "error_description": "AADSTS70011"}
        return 200, self._issue(self.mailbox, "microsoft")

    def google_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type"}
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self._service_key.public_key(),
                algorithms=["RS256"],
                # google-auth addresses the assertion to Google's token endpoint whatever
                # the key file's token_uri says, as Google requires.
                audience="https://oauth2.googleapis.com/token",
            )
        except jwt.PyJWTError as exc:
            return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"}
        if not set(claims.get("scope", "").split()) <= self.delegated_scopes:
            return 401, {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using"
                " this method, or client not authorized for any of the scopes requested.",
            }
        return 200, self._issue(claims.get("sub") or claims["iss"], "google")

    def generic_token(self, form: dict[str, str], auth: str) -> tuple[int, dict[str, Any]]:
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if client_id != CLIENT_ID or secret != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Client auth failed"}
        if form.get("grant_type") != "refresh_token" or (
            form.get("refresh_token") != self.refresh_token
        ):
            return 400, {"error": "invalid_grant", "error_description": "Bad refresh token"}
        return 200, self._issue(self.mailbox, "generic")

    def introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            self.introspected.append(token)
            found = next((i for i in self.issued if i.token == token), None)
        if found is None or found.revoked or time.time() >= found.expires_at:
            return {"active": False}
        return {"active": True, "username": found.mailbox, "token_type": "Bearer"}

    def active(self, user: str, token: str) -> bool:
        """For the SMTP sink: does `token` open `user`'s mailbox?"""
        answer = self.introspect(token)
        return bool(answer["active"]) and answer["username"] == user


def _app_certificate(directory: Path) -> tuple[rsa.RSAPrivateKey, Path]:
    """The app registration's certificate: RSA key and self-signed cert in one PEM file."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbot")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    path = directory / "mailbot-app.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    path.chmod(0o600)
    return key, path


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        endpoint = self.server.endpoint
        endpoint.requests.append(self.path)
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            self._answer(*endpoint.discovery(parts[0]))
        else:
            self._answer(404, {"error": "not_found"})

    def do_POST(self) -> None:
        endpoint = self.server.endpoint
        endpoint.requests.append(self.path)
        length = int(self.headers.get("Content-Length", 0))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        path = self.path.split("?")[0]
        if path == "/introspect":
            self._answer(200, endpoint.introspect(form.get("token", "")))
        elif path == f"/{TENANT}/oauth2/v2.0/token":
            self._answer(*endpoint.microsoft_token(form))
        elif path == "/google/token":
            self._answer(*endpoint.google_token(form))
        elif path == "/generic/token":
            self._answer(*endpoint.generic_token(form, self.headers.get("Authorization", "")))
        elif path.endswith("/oauth2/v2.0/token"):
            self._answer(*endpoint.discovery(path.strip("/").split("/")[0]))
        else:
            self._answer(404, {"error": "not_found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: TokenEndpoint


def _serve(endpoint: TokenEndpoint, context: ssl.SSLContext | None) -> _Server:
    server = _Server((LOOPBACK, free_port()), _Handler)
    server.endpoint = endpoint
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

