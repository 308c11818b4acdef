"""OAuth2 access tokens for IMAP and SMTP sign-in (XOAUTH2): obtained, cached, refreshed.

The protocols are the providers' own libraries' business: MSAL for Microsoft Entra ID (client
credentials with a secret or a certificate), google-auth for a Google service account with
domain-wide delegation (a signed JWT exchanged for a token, impersonating the mailbox), and
Authlib's requests client for any other provider's refresh-token grant. This module is the glue:
a `TokenSource` keeps one token in memory, fetches a new one shortly before it expires, and
`invalidate()` lets a login that the server refused be retried once with a fresh token.

Tokens and secrets are never logged, stored, or put into an error message: errors carry the
provider's error code and description, plus what the admin should change.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from mailbot.config import OAuth2

log = logging.getLogger("mailbot.oauth")

# Refresh this long before the provider's expiry (at most a tenth of the token's lifetime, so
# short-lived tokens are not fetched again on every use).
REFRESH_MARGIN = 300.0

DEFAULT_SCOPES = {
    # Client credentials ask for the resource's ".default" scope: whatever application
    # permissions (IMAP.AccessAsApp, SMTP.SendAsApp) the admin granted to the app.
    "microsoft": ("https://outlook.office365.com/.default",),
    "google": ("https://mail.google.com/",),
    "generic": (),
}

# Known provider error codes → what to fix. Matched against "error: description" text.
HINTS: tuple[tuple[str, str], ...] = (
    ("AADSTS7000215", "the client secret is wrong: create a new one under Entra ID > App"
     " registrations > Certificates & secrets and put its value (not its ID) in client_secret"),
    ("AADSTS7000222", "the client secret has expired: create a new one in Entra ID"),
    ("AADSTS700027", "the certificate is not the one uploaded to the app registration"),
    ("AADSTS700016", "no app with this client_id in this tenant: check [oauth2] client_id and"
     " tenant"),
    ("AADSTS90002", "no such tenant: check [oauth2] tenant (the directory ID or domain)"),
    # MSAL's words when the tenant's discovery document is not found.
    ("Unable to get authority configuration", "no such tenant: check [oauth2] tenant (the"
     " directory ID or domain) and authority"),
    ("AADSTS7000112", "the app is disabled in Entra ID"),
    ("unauthorized_client", "the service account may not act for this mailbox: in Google Admin >"
     " Security > API controls > Domain-wide delegation add its client ID with the scope"
     " https://mail.google.com/"),
    ("invalid_grant", "the grant was refused: a revoked or expired refresh token, a service"
     " account key that was deleted, or a mailbox (username) that does not exist"),
    ("invalid_client", "the client ID or secret is wrong"),
    ("invalid_scope", "the scope is not allowed for this client: check [oauth2] scopes"),
)


class OAuthError(Exception):
    """No token could be had; the text is one line for an admin (no secret, no token)."""


def hint(text: str) -> str:
    """What to fix for a provider error text, or ''."""
    return next((fix for code, fix in HINTS if code in text), "")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unreachable(exc: BaseException) -> OAuthError:
    """A network failure on the way to the provider, said briefly."""
    import requests

    url = getattr(getattr(exc, "request", None), "url", None) or ""
    where = urllib.parse.urlsplit(url).netloc or "the token endpoint"
    if isinstance(exc, requests.exceptions.SSLError):
        reason = "its certificate is not trusted (for a private CA set [oauth2] cafile)"
    elif isinstance(exc, requests.exceptions.Timeout):
        reason = "no answer in time"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        reason = "no connection (check the address, DNS, proxy and firewall)"
    else:
        reason = _one_line(str(exc))
    return OAuthError(f"cannot reach {where}: {reason}")


def _failure(error: str, description: str = "") -> OAuthError:
    what = f"{error}: {description}" if description else error
    fix = hint(what)
    return OAuthError(_one_line(what) + (f" (fix: {fix})" if fix else ""))


@dataclass(frozen=True)
class Token:
    value: str
    lifetime: float  # seconds it is valid for, from when it was issued

    def __repr__(self) -> str:  # never print the token itself
        return f"Token(lifetime={self.lifetime})"


class TokenProvider(Protocol):
    """Asks the provider for a new access token (never from a cache)."""

    def fetch(self) -> Token: ...


class TokenSource:
    """One access token kept in memory, fetched again shortly before it expires."""

    def __init__(
        self,
        provider: TokenProvider,
        *,
        clock: Callable[[], float] = time.monotonic,
        margin: float = REFRESH_MARGIN,
    ) -> None:
        self.provider = provider
        self.clock = clock
        self.margin = margin
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.fetched = 0  # how many tokens were obtained

    def token(self) -> str:
        """A token valid for a while yet: the cached one, or a new one from the provider."""
        with self._lock:
            now = self.clock()
            if self._token is None or now >= self._refresh_at:
                token = self.provider.fetch()
                self.fetched += 1
                margin = min(self.margin, token.lifetime / 10)
                self._token, self._refresh_at = token.value, now + token.lifetime - margin
                log.info("oauth2 token obtained", extra={"valid_for": round(token.lifetime)})
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token: the server refused it (revoked, or expired early)."""
        with self._lock:
            self._token = None


# -- providers ---------------------------------------------------------------------------


HTTP_TIMEOUT = 30.0  # seconds for one request to the provider


def _session(settings: OAuth2, session: Any = None) -> Any:
    """A requests session with a timeout, verifying with [oauth2] cafile when given.

    Given per request: requests lets REQUESTS_CA_BUNDLE override a session's `verify`.
    """
    if session is None:
        import requests

        session = requests.Session()
    defaults: dict[str, Any] = {"timeout": HTTP_TIMEOUT}
    if settings.cafile:
        defaults["verify"] = str(settings.cafile)
    session.request = functools.partial(session.request, **defaults)
    return session


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)


def read_certificate(path: Path) -> tuple[str, str]:
    """(private key, certificate) PEM blocks from one PEM file that holds both."""
    text = path.read_text(encoding="utf-8")
    blocks = {m.group(1): m.group(0) for m in _PEM_BLOCK.finditer(text)}
    key = next((b for kind, b in blocks.items() if kind.endswith("PRIVATE KEY")), None)
    cert = blocks.get("CERTIFICATE")
    if key is None or cert is None:
        missing = "private key" if key is None else "certificate"
        raise ValueError(f"{path.name} holds no {missing} (PEM with both is needed)")
    return key, cert


class MicrosoftProvider:
    """Entra ID client credentials (secret or certificate) through MSAL."""

    def __init__(self, settings: OAuth2) -> None:
        self.settings = settings
        self._app: Any = None

    def _application(self) -> Any:
        import msal

        if self._app is None:
            s = self.settings
            credential: Any
            if s.certificate_file:
                key, cert = read_certificate(s.certificate_file)
                # MSAL computes the thumbprint from the certificate.
                credential = {"private_key": key, "public_certificate": cert}
            else:
                credential = s.client_secret.read()
                if not credential:
                    raise OAuthError("no client secret: [oauth2] client_secret_env is not set")
            self._app = msal.ConfidentialClientApplication(
                s.client_id,
                client_credential=credential,
                authority=f"{s.authority.rstrip('/')}/{s.tenant}",
                # The authority is the admin's choice; no look-up at Microsoft's discovery
                # service (also what makes national clouds and offline tests work).
                instance_discovery=False,
                validate_authority=False,
                http_client=_session(s),
                token_cache=msal.TokenCache(),
            )
        return self._app

    def fetch(self) -> Token:
        import msal

        try:
            app = self._application()
            # Our TokenSource decides when a new token is needed: empty MSAL's cache first.
            cache = app.token_cache
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(item)
            result = app.acquire_token_for_client(scopes=list(self.settings.scopes))
        except OAuthError:
            raise
        except OSError as exc:  # requests' errors included
            raise _unreachable(exc) from None
        except ValueError as exc:
            raise _failure("sign-in service refused", str(exc)) from None
        if "access_token" not in result:
            raise _failure(result.get("error", "error"), result.get("error_description", ""))
        return Token(result["access_token"], float(result.get("expires_in", 3600)))


class GoogleProvider:
    """A service account with domain-wide delegation, impersonating the mailbox (google-auth)."""

    def __init__(self, settings: OAuth2, mailbox: str) -> None:
        self.settings = settings
        self.mailbox = mailbox

    def fetch(self) -> Token:
        from google.auth.exceptions import GoogleAuthError
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        s = self.settings
        assert s.service_account_file is not None  # checked by config
        try:
            credentials = service_account.Credentials.from_service_account_file(
                str(s.service_account_file), scopes=list(s.scopes), subject=self.mailbox
            )
            credentials.refresh(Request(session=_session(s)))
        except GoogleAuthError as exc:
            args = exc.args
            if args and isinstance(args[0], OSError):  # TransportError wraps requests' error
                raise _unreachable(args[0]) from None
            detail = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
            if detail.get("error"):
                raise _failure(detail["error"], detail.get("error_description", "")) from None
            raise _failure("google token request failed", str(args[0] if args else exc)) from None
        except (ValueError, OSError) as exc:
            raise _failure("service account key unusable", str(exc)) from None
        expiry = credentials.expiry  # naive UTC
        lifetime = (
            (expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds() if expiry else 3600.0
        )
        return Token(credentials.token, max(lifetime, 0.0))


class GenericProvider:
    """Any provider's token endpoint: a refresh token exchanged for access tokens (Authlib)."""

    def __init__(self, settings: OAuth2) -> None:
        self.settings = settings
        self._refresh_token: str | None = None  # the newest, when the provider rotates them

    def fetch(self) -> Token:
        from authlib.common.errors import AuthlibBaseError
        from authlib.integrations.requests_client import OAuth2Session

        s = self.settings
        refresh_token = self._refresh_token or s.refresh_token.read()
        if not refresh_token:
            raise OAuthError("no refresh token: [oauth2] refresh_token_env is not set")
        secret = s.client_secret.read()
        session = _session(
            s,
            OAuth2Session(
                s.client_id,
                secret,
                scope=" ".join(s.scopes) or None,
                token_endpoint_auth_method="client_secret_post" if secret else "none",
            ),
        )
        try:
            token = session.refresh_token(s.token_url, refresh_token=refresh_token)
        except AuthlibBaseError as exc:
            raise _failure(exc.error or "error", exc.description or "") from None
        except OSError as exc:
            raise _unreachable(exc) from None
        except ValueError as exc:
            raise _failure("token endpoint failed", str(exc)) from None
        finally:
            session.close()
        if token.get("refresh_token"):
            self._refresh_token = token["refresh_token"]
        if "access_token" not in token:
            raise _failure(token.get("error", "no access_token in the answer"))
        lifetime = token.get("expires_in")
        if lifetime is None and token.get("expires_at"):
            lifetime = float(token["expires_at"]) - time.time()
        return Token(token["access_token"], float(lifetime or 3600))


# -- configuration checks (check-config) --------------------------------------------------


def check_oauth2(
    problem: Callable[[str, str, str], None], raw: dict, required_by: list[str]
) -> None:
    """Report what keeps [oauth2] from working (`raw`: its converted keys, before building).

    Checked only as far as can be without asking the provider; `mailbot check-mailbox` does the
    rest. `required_by` names the sections that sign in with oauth2; while none does, the
    settings are still checked, except that their environment variables may be unset.
    """
    provider = raw.get("provider", "")
    if not provider:
        for section in required_by:
            problem(section, "auth", 'oauth2 needs an [oauth2] section with a provider')
        return
    in_use = bool(required_by)
    section = "oauth2"

    def need(*keys: str) -> None:
        for key in keys:
            if not raw.get(key):
                problem(section, key, f"required for provider = {provider!r}")

    def secret(name: str, required: bool) -> bool:
        env, file = raw.get(f"{name}_env"), raw.get(f"{name}_file")
        if env and file:
            problem(section, f"{name}_env", f"give {name}_env or {name}_file, not both")
        elif file:
            try:
                file.read_text(encoding="utf-8")
            except OSError as exc:
                problem(section, f"{name}_file", f"cannot read {file}: {exc.strerror}")
        elif env and env not in os.environ and required and in_use:
            problem(section, f"{name}_env", f"environment variable {env} is not set")
        return bool(env or file)

    if provider == "microsoft":
        need("tenant", "client_id")
        has_secret = secret("client_secret", required=True)
        certificate = raw.get("certificate_file")
        if certificate and has_secret:
            problem(section, "certificate_file", "give a client secret or a certificate, not both")
        elif certificate:
            try:
                read_certificate(certificate)
            except OSError as exc:
                problem(section, "certificate_file", f"cannot read {certificate}: {exc.strerror}")
            except ValueError as exc:
                problem(section, "certificate_file", str(exc))
        elif not has_secret:
            problem(section, "client_secret_env", "a client secret (env or file) or a"
                    " certificate_file is needed")
        if not str(raw.get("authority", "")).startswith("https://"):
            problem(section, "authority", "must be an https:// address")
    elif provider == "google":
        need("service_account_file")
        path = raw.get("service_account_file")
        if path:
            _check_service_account(problem, path)
    else:
        need("token_url", "client_id")
        url = str(raw.get("token_url", ""))
        loopback = re.match(r"http://(127\.0\.0\.1|localhost|\[::1\])[:/]", url)
        if url and not url.startswith("https://") and not loopback:
            problem(section, "token_url", "must be an https:// address")
        secret("client_secret", required=True)
        if not secret("refresh_token", required=True):
            problem(section, "refresh_token_env", "a refresh_token_env or refresh_token_file is"
                    " needed")


def _check_service_account(problem: Callable[[str, str, str], None], path: Path) -> None:
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problem("oauth2", "service_account_file", f"cannot read {path}: {exc.strerror}")
        return
    except ValueError:
        problem("oauth2", "service_account_file", f"{path.name} is not a JSON key file")
        return
    if not isinstance(key, dict) or key.get("type") != "service_account":
        problem("oauth2", "service_account_file", f"{path.name} is not a service account key"
                ' (type "service_account"; download a JSON key in Google Cloud > IAM)')
        return
    missing = [k for k in ("client_email", "private_key", "token_uri") if not key.get(k)]
    if missing:
        problem("oauth2", "service_account_file", f"{path.name} lacks {', '.join(missing)}")


def provider_for(settings: OAuth2, mailbox: str) -> TokenProvider:
    if settings.provider == "microsoft":
        return MicrosoftProvider(settings)
    if settings.provider == "google":
        return GoogleProvider(settings, mailbox)
    return GenericProvider(settings)


def token_source(settings: OAuth2, mailbox: str) -> TokenSource:
    """Tokens for signing in as `mailbox` with the [oauth2] settings."""
    return TokenSource(provider_for(settings, mailbox))


def xoauth2(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def server_error(challenge: bytes | str | None) -> str:
    """The JSON error a server sends as an XOAUTH2 challenge, as text ('' if none)."""
    if not challenge:
        return ""
    text = challenge.decode(errors="replace") if isinstance(challenge, bytes) else challenge
    try:
        detail = json.loads(text)
    except ValueError:
        return _one_line(text)
    if not isinstance(detail, dict):
        return _one_line(text)
    return _one_line(" ".join(f"{key}={value}" for key, value in detail.items()))
