"""Load config.toml into frozen dataclasses, reporting every problem at once."""

from __future__ import annotations

import errno
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from email.headerregistry import Address
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot.mail.charsets import fold
from mailbot.periods import Period, parse_period
from mailbot.sla import BusinessCalendar, DailyWindow, Duration, parse_clock, parse_duration
from mailbot.thanks import THANKS_PHRASES, THANKS_WORDS, ThanksRules

# Public mail services: many unrelated people write from each, so the per-domain limit on
# automatic answers ([limits] auto_replies_per_domain_per_10min) leaves them out.
PUBLIC_MAIL_DOMAINS = (
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
    "yahoo.com", "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com",
    "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com", "yandex.com", "zoho.com",
    "wp.pl", "o2.pl", "onet.pl", "op.pl", "onet.eu", "vp.pl", "poczta.onet.pl", "interia.pl",
    "interia.eu", "poczta.fm", "gazeta.pl", "tlen.pl", "int.pl", "go2.pl", "buziaczek.pl",
    "autograf.pl", "spoko.pl", "vip.onet.pl", "protonmail.ch",
)  # fmt: skip

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(Exception):
    """The configuration has problems; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Agent:
    email: str
    name: str
    digest: bool = True  # false: no daily digest mail (#lista still answers)


@dataclass(frozen=True)
class Manager:
    name: str
    email: str
    phone: str
    customers: tuple[str, ...]

    def serves(self, address: str) -> bool:
        """True when `address` is one of this manager's customers (address or @domain)."""
        address = address.lower()
        domain = "@" + address.rpartition("@")[2]
        return any(c in (address, domain) for c in self.customers)


@dataclass(frozen=True)
class Topic:
    name: str
    keywords: tuple[str, ...]
    agents: tuple[str, ...]
    names: tuple[tuple[str, str], ...] = ()  # (language, name): `names = { pl = "logistyka" }`

    def name_in(self, language: str) -> str:
        """What the topic is called in `language` (its `name` when not given)."""
        return dict(self.names).get(language, self.name)

    def spellings(self) -> set[str]:
        """Every name of the topic, folded (lower case, no diacritics)."""
        return {fold(n) for n in (self.name, *dict(self.names).values())}


@dataclass(frozen=True)
class Mailbox:
    """A support address customers write to: its own intake, sender name, language and topic."""

    address: str
    name: str
    default_language: str
    topic: str | None  # a new ticket's topic when no keyword matches (None: no topic)
    folder: str  # the IMAP folder its mail arrives in (left out: the [inbound.imap] folder)

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    def receives(self, address: str) -> bool:
        """Mail to `address` is mail to this mailbox: the address itself or a +tag variant."""
        local, _, domain = address.strip().strip("<>").lower().rpartition("@")
        own_local, _, own_domain = self.address.rpartition("@")
        return domain == own_domain and local.split("+", 1)[0] == own_local


@dataclass(frozen=True)
class Secret:
    """Where a password comes from: an environment variable or a file, never the TOML."""

    env: str | None = None
    file: Path | None = None

    def read(self) -> str | None:
        if self.env:
            return os.environ.get(self.env)
        if self.file:
            return credentials_path(self.file).read_text(encoding="utf-8").strip()
        return None

    def __repr__(self) -> str:  # never print the value, only where it comes from
        return f"Secret(env={self.env!r}, file={self.file!r})"


@dataclass(frozen=True)
class OAuth2:
    """[oauth2]: how mailbot gets access tokens for XOAUTH2 sign-in (see mailbot/oauth.py)."""

    provider: str  # "microsoft" | "google" | "generic" ("" when not configured)
    tenant: str
    client_id: str
    client_secret: Secret
    certificate_file: Path | None
    service_account_file: Path | None
    token_url: str
    refresh_token: Secret
    scopes: tuple[str, ...]  # the provider's default when not given
    authority: str
    cafile: Path | None


@dataclass(frozen=True)
class MailbotSection:
    address: str
    name: str
    data_dir: Path
    timezone: ZoneInfo
    languages: tuple[str, ...]
    default_language: str
    templates: Path
    contact_forms: tuple[str, ...]
    trusted_authserv_ids: tuple[str, ...]
    reopen_days: int
    max_attempts: int

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True)
class SmtpInbound:
    enabled: bool
    host: str
    port: int
    protocol: str
    max_message_size: int
    max_sessions: int = 100  # connections at once; more are answered 421 and closed
    idle_timeout: float = 60.0  # seconds a silent client may hold its connection


@dataclass(frozen=True)
class ImapInbound:
    enabled: bool
    host: str
    port: int
    tls: str
    cafile: Path | None
    username: str
    password: Secret
    folder: str
    processed_folder: str
    idle: bool
    poll_interval: float
    auth: str = "password"  # or "oauth2": XOAUTH2 with a token from [oauth2]


@dataclass(frozen=True)
class Outbound:
    transport: str
    path: Path
    host: str
    port: int
    starttls: bool
    ssl: bool
    cafile: Path | None
    username: str
    password: Secret
    envelope_from: str
    auto_envelope_from: str
    timeout: float
    max_attempts: int  # no longer read: only a 5xx or queue_lifetime ends delivery attempts
    footer: str
    queue_lifetime: timedelta = timedelta(days=5)
    auth: str = "password"  # or "oauth2": AUTH XOAUTH2 with a token from [oauth2]


@dataclass(frozen=True)
class Hours:
    days: tuple[int, ...]
    opens: time
    closes: time
    holidays: str
    subdivision: str
    extra_holidays: tuple[date, ...]


@dataclass(frozen=True)
class Sla:
    first_response: Duration
    warn_before: tuple[Duration, ...]
    notify: tuple[str, ...]


@dataclass(frozen=True)
class Urgent:
    keywords: tuple[str, ...]
    manager_hours: str
    abuse_warn: int
    abuse_limit: int
    route_text: Mapping[str, str] = field(default_factory=dict)  # language → sentence


@dataclass(frozen=True)
class Limits:
    max_header_size: int
    max_parts: int
    max_depth: int
    auto_replies_per_10min: int
    auto_replies_per_day: int
    undeliverable_days: int
    # Floods (`mailbot.loops`): per sender domain, all together, and the breaker's calm.
    auto_replies_per_domain_per_10min: int = 10
    auto_replies_per_minute: int = 30
    auto_replies_calm_minutes: int = 10
    public_mail_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class Notifications:
    digest: time | None  # when the daily digest goes to agents on business days; None: off
    attachments_max: int  # bytes of customer files (and original message) carried to agents
    text_max: int = 100_000  # bytes of the customer's text a notification to agents quotes


@dataclass(frozen=True)
class Metrics:
    host: str  # "" with port 0: no metrics endpoint
    port: int

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class Logging:
    level: str  # debug info warning error
    format: str  # logfmt json
    addresses: str  # full domain hash


@dataclass(frozen=True)
class Retention:
    """How long personal data is kept; None keeps it (the default for each)."""

    raw_mail: Period | None = None  # inbound mail as it arrived (.eml bytes)
    attachments: Period | None = None  # files customers and agents sent
    closed_tickets: Period | None = None  # texts and addresses of tickets closed this long

    @property
    def enabled(self) -> bool:
        return any((self.raw_mail, self.attachments, self.closed_tickets))


@dataclass(frozen=True)
class Config:
    path: Path
    mailbot: MailbotSection
    smtp: SmtpInbound
    imap: ImapInbound
    outbound: Outbound
    hours: Hours
    sla: Sla
    urgent: Urgent
    limits: Limits
    thanks: ThanksRules
    notifications: Notifications
    oauth2: OAuth2 | None = None
    retention: Retention = field(default_factory=Retention)
    agents: tuple[Agent, ...] = ()
    managers: tuple[Manager, ...] = ()
    topics: tuple[Topic, ...] = ()
    metrics: Metrics = Metrics("", 0)
    logging: Logging = Logging("info", "logfmt", "domain")
    # The support addresses, the [mailbot] address (the default mailbox) first; never empty.
    mailboxes: tuple[Mailbox, ...] = ()
    _calendar: list[BusinessCalendar] = field(default_factory=list, repr=False, compare=False)

    @property
    def tz(self) -> ZoneInfo:
        return self.mailbot.timezone

    @property
    def calendar(self) -> BusinessCalendar:
        if not self._calendar:  # built once: the holiday tables are costly
            self._calendar.append(
                BusinessCalendar(
                    tz=self.tz,
                    days=frozenset(self.hours.days),
                    opens=self.hours.opens,
                    closes=self.hours.closes,
                    country=self.hours.holidays or None,
                    subdivision=self.hours.subdivision or None,
                    extra_holidays=frozenset(self.hours.extra_holidays),
                )
            )
        return self._calendar[0]

    @property
    def manager_window(self) -> DailyWindow:
        return DailyWindow.parse(self.urgent.manager_hours, self.tz)

    def mailbox(self, address: str | None) -> Mailbox:
        """The mailbox of this address (a ticket's stored mailbox), else the default one.

        A mailbox removed from the config since leaves its tickets with the default one.
        """
        if address and len(self.mailboxes) > 1:
            found = next((m for m in self.mailboxes if m.address == address), None)
            if found:
                return found
        return self.mailboxes[0]

    def mailbox_receiving(self, address: str) -> Mailbox | None:
        """The mailbox that mail to `address` (or a +tag variant of it) is for, or None."""
        address = address.strip().strip("<>").lower()
        exact = next((m for m in self.mailboxes if m.address == address), None)
        return exact or next((m for m in self.mailboxes if m.receives(address)), None)

    def agent(self, address: str) -> Agent | None:
        address = address.lower()
        return next((a for a in self.agents if a.email.lower() == address), None)

    def manager_for(self, address: str) -> Manager | None:
        return next((m for m in self.managers if m.serves(address)), None)

    def find_topic(self, name: str) -> Topic | None:
        """A topic by any of its names, ignoring case and diacritics ("Logistyka", "logistics")."""
        wanted = fold(" ".join(name.split()))
        return next((t for t in self.topics if wanted in t.spellings()), None)

    def topic_name(self, name: str | None, language: str) -> str:
        """A ticket's topic as a reader of `language` calls it ('' for none)."""
        topic = next((t for t in self.topics if t.name == name), None)
        return topic.name_in(language) if topic else name or ""


# ---------------------------------------------------------------------------
# Schema: section -> key -> (converter, default). A default of REQUIRED must be given.
# The converter takes (value, context) and returns the Python value or raises ValueError.

REQUIRED = object()
Converter = Callable[[Any, "_Context"], Any]


@dataclass
class _Context:
    base: Path  # directory of the config file: relative paths start here


def _typed(kind: type | tuple[type, ...], name: str) -> Converter:
    def convert(value: Any, ctx: _Context) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise ValueError(f"expected {name}, got a boolean")
        if not isinstance(value, kind):
            raise ValueError(f"expected {name}, got {type(value).__name__}")
        return value

    return convert


_str = _typed(str, "a string")
_bool = _typed(bool, "true or false")


def _int(value: Any, ctx: _Context) -> int:
    value = _typed(int, "an integer")(value, ctx)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive(value: Any, ctx: _Context) -> int:
    value = _int(value, ctx)
    if value < 1:
        raise ValueError("must be at least 1 (0 would give up before the first attempt)")
    return value


def _at_least_one(value: Any, ctx: _Context) -> int:
    value = _int(value, ctx)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _float(value: Any, ctx: _Context) -> float:
    return float(_typed((int, float), "a number")(value, ctx))


def _seconds(value: Any, ctx: _Context) -> float:
    value = _float(value, ctx)
    if value <= 0:
        raise ValueError("must be more than 0 seconds")
    return value


def _str_list(value: Any, ctx: _Context) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def _domains(value: Any, ctx: _Context) -> tuple[str, ...]:
    """Mail domains, compared in lower case ("@wp.pl" and "WP.pl" are "wp.pl")."""
    return tuple(d.strip().lstrip("@").lower() for d in _str_list(value, ctx))


def _address(value: Any, ctx: _Context) -> str:
    value = _str(value, ctx).strip()
    try:
        parsed = Address(addr_spec=value)
    except Exception as exc:
        raise ValueError(f"not an email address: {value!r}") from exc
    if not parsed.domain or not parsed.username:
        raise ValueError(f"not an email address: {value!r}")
    return value.lower()


def _optional_address(value: Any, ctx: _Context) -> str:
    return _address(value, ctx) if value else ""


def _envelope(value: Any, ctx: _Context) -> str:
    """An envelope sender: an address, "<>" for the null sender, or "" for the default."""
    value = _str(value, ctx).strip()
    return value if value in ("", "<>") else _address(value, ctx)


def _addresses(value: Any, ctx: _Context) -> tuple[str, ...]:
    return tuple(_address(v, ctx) for v in _str_list(value, ctx))


_DOMAIN_RE = re.compile(r"^@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}$")


def _customers(value: Any, ctx: _Context) -> tuple[str, ...]:
    out = []
    for item in _str_list(value, ctx):
        item = item.strip().lower()
        if item.startswith("@"):
            if not _DOMAIN_RE.match(item):
                raise ValueError(
                    f"{item!r} can never match: give a whole domain such as '@example.pl'"
                    " (no wildcards; a subdomain is listed on its own)"
                )
            out.append(item)
        else:
            out.append(_address(item, ctx))
    return tuple(out)


def _path(value: Any, ctx: _Context) -> Path:
    return (ctx.base / _str(value, ctx)).resolve()


def _optional_path(value: Any, ctx: _Context) -> Path | None:
    return _path(value, ctx) if value else None


# A secret file may live in systemd's credentials directory (LoadCredential=), known only to the
# running service: `password_file = "${CREDENTIALS_DIRECTORY}/imap-password"`.
CREDENTIALS = "${CREDENTIALS_DIRECTORY}"


def credentials_path(path: Path) -> Path:
    """`path` with a leading ${CREDENTIALS_DIRECTORY} replaced by the environment's value."""
    text = str(path)
    if not text.startswith(CREDENTIALS):
        return path
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise FileNotFoundError(
            errno.ENOENT, "CREDENTIALS_DIRECTORY is not set (only under systemd's LoadCredential=)"
        )
    return Path(directory) / text[len(CREDENTIALS) :].lstrip("/")


def _secret_path(value: Any, ctx: _Context) -> Path | None:
    """A password file: relative to the config, or under ${CREDENTIALS_DIRECTORY}."""
    text = _str(value, ctx)
    if text.startswith(CREDENTIALS):
        return Path(text)  # expanded when read: the directory exists only inside the service
    return _path(text, ctx) if text else None


def _timezone(value: Any, ctx: _Context) -> ZoneInfo:
    try:
        return ZoneInfo(_str(value, ctx))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {value!r}") from exc


def _clock(value: Any, ctx: _Context) -> time:
    return parse_clock(_str(value, ctx))


def _duration(value: Any, ctx: _Context) -> Duration:
    return parse_duration(_str(value, ctx))


def _period(value: Any, ctx: _Context) -> Period | None:
    return parse_period(_str(value, ctx))


def _durations(value: Any, ctx: _Context) -> tuple[Duration, ...]:
    return tuple(parse_duration(v) for v in _str_list(value, ctx))


_TIMESPAN_PART = re.compile(r"\s*(\d+)\s*(days?|d|hours?|h|minutes?|min|m)\s*,?")


def _timespan(value: Any, ctx: _Context) -> timedelta:
    """Calendar time, not business time: "5 days", "12h", "1 day 12h", "90 minutes"."""
    text = _str(value, ctx).strip().lower()
    total, pos = timedelta(), 0
    while pos < len(text):
        match = _TIMESPAN_PART.match(text, pos)
        if match is None:
            raise ValueError(f'invalid time span {value!r}: expected e.g. "5 days" or "12h"')
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match[2][0]]
        total += timedelta(**{unit: int(match[1])})
        pos = match.end()
    if total <= timedelta():
        raise ValueError(f"invalid time span {value!r}: must be longer than zero")
    return total


def _days(value: Any, ctx: _Context) -> tuple[int, ...]:
    days = []
    for item in _str_list(value, ctx):
        key = item.strip().lower()[:3]
        if key not in WEEKDAYS:
            raise ValueError(f"unknown weekday {item!r} (use {', '.join(WEEKDAYS)})")
        days.append(WEEKDAYS.index(key))
    if not days:
        raise ValueError("at least one business day is needed")
    return tuple(sorted(set(days)))


def _dates(value: Any, ctx: _Context) -> tuple[date, ...]:
    out = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, date):
            out.append(item)
        elif isinstance(item, str):
            try:
                out.append(date.fromisoformat(item))
            except ValueError as exc:
                raise ValueError(f"not a date (YYYY-MM-DD): {item!r}") from exc
        else:
            raise ValueError("expected a list of dates (YYYY-MM-DD)")
    return tuple(out)


def _country(value: Any, ctx: _Context) -> str:
    import holidays

    value = _str(value, ctx).strip().upper()
    if value and value not in holidays.list_supported_countries():
        raise ValueError(f"unknown holiday country {value!r}")
    return value


# What an acknowledgement tells a customer without an account manager in [[managers]].
ROUTE_TEXT = {
    "pl": "W pilnych sprawach prosimy o kontakt z opiekunem klienta. Dane kontaktowe opiekuna"
    " znajdą Państwo na swoim koncie w serwisie 4Dustry.",
    "en": "For urgent matters, please contact your account manager. You will find their contact"
    " details in your 4Dustry account.",
}


def _texts_by_language(value: Any, ctx: _Context) -> dict[str, str]:
    """A table of texts per language, e.g. { pl = "...", en = "..." }, over the defaults."""
    if not isinstance(value, Mapping):
        raise ValueError('expected a table of texts per language, e.g. { pl = "...", en = "..." }')
    texts = dict(ROUTE_TEXT)
    for language, text in value.items():
        _language(language, ctx)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{language}: expected a non-empty text")
        texts[language] = " ".join(text.split())
    return texts


def _window(value: Any, ctx: _Context) -> str:
    DailyWindow.parse(_str(value, ctx), ZoneInfo("UTC"))
    return value


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(i?)b?\s*$", re.I)


def _size(value: Any, ctx: _Context) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return _int(value, ctx)
    match = _SIZE_RE.match(_str(value, ctx))
    if not match:
        raise ValueError(f"not a size like '25 MB': {value!r}")
    number, unit, binary = match.groups()
    power = " kmg".index(unit.lower() or " ")
    return int(float(number) * (1024 if binary else 1000) ** power)


def _text_size(value: Any, ctx: _Context) -> int:
    """[notifications] text_max: a size of at least 1 KB (a notification quotes something)."""
    size = _size(value, ctx)
    if size < 1000:
        raise ValueError(f"must be at least 1 KB, not {value!r}")
    return size


# [notifications] digest left out: the digest goes at the opening time of [hours].
AT_OPENING = object()


def _digest_time(value: Any, ctx: _Context) -> Any:
    """ "HH:MM", "" (off), or AT_OPENING when the key is not given."""
    if value is AT_OPENING:
        return AT_OPENING
    value = _str(value, ctx).strip()
    return parse_clock(value) if value else None


def _choice(*choices: str) -> Converter:
    def convert(value: Any, ctx: _Context) -> str:
        value = _str(value, ctx)
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return convert


def _listen(value: Any, ctx: _Context) -> tuple[str, int]:
    host, sep, port = _str(value, ctx).rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port} is not a valid port (1–65535)")
    return host.strip("[]"), int(port)


def _optional_listen(value: Any, ctx: _Context) -> tuple[str, int]:
    """HOST:PORT, or "" for off (returned as ("", 0))."""
    return _listen(value, ctx) if _str(value, ctx).strip() else ("", 0)


def _language(value: Any, ctx: _Context) -> str:
    value = _str(value, ctx)
    if not re.fullmatch(r"[a-z]{2,3}", value):
        raise ValueError(f"not a language code: {value!r}")
    return value


def _optional_language(value: Any, ctx: _Context) -> str:
    return _language(value, ctx) if value else ""


def _languages(value: Any, ctx: _Context) -> tuple[str, ...]:
    langs = tuple(_language(v, ctx) for v in _str_list(value, ctx))
    if not langs:
        raise ValueError("at least one language is needed")
    return langs


def _names(value: Any, ctx: _Context) -> tuple[tuple[str, str], ...]:
    """`{ pl = "logistyka", en = "logistics" }`: a name per language code."""
    if not isinstance(value, Mapping):
        raise ValueError('expected a table of names per language, e.g. { pl = "logistyka" }')
    names = []
    for language, name in value.items():
        _language(language, ctx)
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{language}: expected a name")
        names.append((language, " ".join(name.split())))
    return tuple(names)


SCHEMA: dict[str, dict[str, tuple[Converter, Any]]] = {
    "mailbot": {
        "address": (_address, REQUIRED),
        "name": (_str, "4Dustry"),
        "data_dir": (_path, "data"),
        "timezone": (_timezone, "Europe/Warsaw"),
        "languages": (_languages, ["pl", "en"]),
        "default_language": (_language, "pl"),
        "templates": (_path, "templates"),
        "contact_forms": (_addresses, []),
        "trusted_authserv_ids": (_str_list, []),
        "reopen_days": (_int, 14),
        "max_attempts": (_positive, 3),
    },
    "inbound.smtp": {
        "enabled": (_bool, True),
        "listen": (_listen, "127.0.0.1:2525"),
        "protocol": (_choice("smtp", "lmtp"), "smtp"),
        "max_message_size": (_size, "25 MB"),
        "max_sessions": (_at_least_one, 100),
        "idle_timeout": (_seconds, 60.0),
    },
    "inbound.imap": {
        "enabled": (_bool, False),
        "host": (_str, "localhost"),
        "port": (_int, 993),
        "tls": (_choice("ssl", "starttls", "none"), "ssl"),
        "cafile": (_optional_path, ""),
        "username": (_str, ""),
        "password_env": (_str, ""),
        "password_file": (_secret_path, ""),
        "auth": (_choice("password", "oauth2"), "password"),
        "folder": (_str, "INBOX"),
        "processed_folder": (_str, ""),
        "idle": (_bool, True),
        "poll_interval": (_float, 60.0),
    },
    "outbound": {
        "transport": (_choice("maildir", "smtp"), "maildir"),
        "path": (_path, "data/sent"),
        "host": (_str, "localhost"),
        "port": (_int, 587),
        "starttls": (_bool, True),
        "ssl": (_bool, False),
        "cafile": (_optional_path, ""),
        "username": (_str, ""),
        "password_env": (_str, ""),
        "password_file": (_secret_path, ""),
        "auth": (_choice("password", "oauth2"), "password"),
        "envelope_from": (_optional_address, ""),
        "auto_envelope_from": (_envelope, ""),
        "timeout": (_float, 30.0),
        "max_attempts": (_positive, 10),  # no longer read (see queue_lifetime); old configs load
        "queue_lifetime": (_timespan, "5 days"),
        "footer": (_str, ""),
    },
    "hours": {
        "days": (_days, ["mon", "tue", "wed", "thu", "fri"]),
        "open": (_clock, "08:00"),
        "close": (_clock, "18:00"),
        "holidays": (_country, "PL"),
        "subdivision": (_str, ""),
        "extra_holidays": (_dates, []),
    },
    "sla": {
        "first_response": (_duration, "2 business days"),
        "warn_before": (_durations, ["4h"]),
        "notify": (_addresses, []),
    },
    "urgent": {
        "keywords": (_str_list, ["pilne", "pilny", "urgent", "awaria", "asap"]),
        "manager_hours": (_window, "07:00-22:00"),
        "abuse_warn": (_int, 3),
        "abuse_limit": (_int, 5),
        "route_text": (_texts_by_language, {}),
    },
    "thanks": {
        "phrases": (_str_list, list(THANKS_PHRASES)),
        "words": (_str_list, list(THANKS_WORDS)),
        "max_words": (_int, 25),
    },
    "limits": {
        "max_header_size": (_size, "256 KB"),
        "max_parts": (_int, 500),
        "max_depth": (_int, 20),
        "auto_replies_per_10min": (_int, 3),
        "auto_replies_per_day": (_int, 10),
        "undeliverable_days": (_int, 7),
        "auto_replies_per_domain_per_10min": (_int, 10),
        "auto_replies_per_minute": (_int, 30),
        "auto_replies_calm_minutes": (_int, 10),
        "public_mail_domains": (_domains, list(PUBLIC_MAIL_DOMAINS)),
    },
    "notifications": {
        "digest": (_digest_time, AT_OPENING),
        "attachments_max": (_size, "10 MB"),
        "text_max": (_text_size, "100 KB"),
    },
    "metrics": {
        "listen": (_optional_listen, ""),
    },
    "logging": {
        "level": (_choice("debug", "info", "warning", "error"), "info"),
        "format": (_choice("logfmt", "json"), "logfmt"),
        "addresses": (_choice("full", "domain", "hash"), "domain"),
    },
    "oauth2": {
        "provider": (_choice("", "microsoft", "google", "generic"), ""),
        "tenant": (_str, ""),
        "client_id": (_str, ""),
        "client_secret_env": (_str, ""),
        "client_secret_file": (_secret_path, ""),
        "certificate_file": (_optional_path, ""),
        "service_account_file": (_optional_path, ""),
        "token_url": (_str, ""),
        "refresh_token_env": (_str, ""),
        "refresh_token_file": (_secret_path, ""),
        "scopes": (_str_list, []),
        "authority": (_str, "https://login.microsoftonline.com"),
        "cafile": (_optional_path, ""),
    },
    "retention": {
        "raw_mail": (_period, ""),
        "attachments": (_period, ""),
        "closed_tickets": (_period, ""),
    },
}

TABLE_ARRAYS: dict[str, dict[str, tuple[Converter, Any]]] = {
    "agents": {
        "email": (_address, REQUIRED),
        "name": (_str, REQUIRED),
        "digest": (_bool, True),
    },
    "managers": {
        "name": (_str, REQUIRED),
        "email": (_address, REQUIRED),
        "phone": (_str, ""),
        "customers": (_customers, []),
    },
    "topics": {
        "name": (_str, REQUIRED),
        "names": (_names, {}),
        "keywords": (_str_list, []),
        "agents": (_addresses, []),
    },
    # The [mailbot] section's values stand in for a mailbox's keys left out (_mailboxes).
    "mailboxes": {
        "address": (_address, REQUIRED),
        "name": (_str, ""),
        "default_language": (_optional_language, ""),
        "topic": (_str, ""),
        "folder": (_str, ""),
    },
}


class _Loader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []
        self.ctx = _Context(base=path.parent.resolve())

    def problem(self, section: str, key: str, text: str) -> None:
        self.problems.append(f"{self.path.name}: [{section}] {key}: {text}")

    def section(self, name: str, raw: Mapping[str, Any], schema: Mapping[str, Any]) -> dict:
        values: dict[str, Any] = {}
        for key in raw:
            if key not in schema:
                self.problem(name, key, "unknown key")
        for key, (convert, default) in schema.items():
            if key in raw:
                value = raw[key]
            elif default is REQUIRED:
                self.problem(name, key, "missing (required)")
                continue
            else:
                value = default
            try:
                values[key] = convert(value, self.ctx)
            except (ValueError, TypeError) as exc:
                self.problem(name, key, str(exc))
        return values


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return node


def default_path() -> Path:
    return Path(os.environ.get("MAILBOT_CONFIG", "config.toml"))


def load(path: Path | str | None = None) -> Config:
    """Read and validate the config file; raise ConfigError listing every problem."""
    path = Path(path) if path else default_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path.name}: not valid TOML: {exc}"]) from exc
    loader = _Loader(path)
    known = {name.split(".")[0] for name in SCHEMA} | set(TABLE_ARRAYS)
    for name in data:
        if name not in known:
            loader.problem(name, "*", "unknown section")
    if "inbound" in data and isinstance(data["inbound"], Mapping):
        for name in data["inbound"]:
            if f"inbound.{name}" not in SCHEMA:
                loader.problem(f"inbound.{name}", "*", "unknown section")
    values = {}
    for name, schema in SCHEMA.items():
        raw = _lookup(data, name)
        if not isinstance(raw, Mapping):
            loader.problem(name, "*", "expected a table")
            raw = {}
        values[name] = loader.section(name, raw, schema)
    arrays: dict[str, list[dict]] = {}
    for name, schema in TABLE_ARRAYS.items():
        items = data.get(name, [])
        if not isinstance(items, list):
            loader.problem(name, "*", "expected [[" + name + "]] entries")
            items = []
        arrays[name] = [loader.section(f"{name}.{i}", item, schema) for i, item in enumerate(items)]
    _check_semantics(loader, values, arrays)
    _check_consistency(loader, values, arrays)
    if loader.problems:
        raise ConfigError(loader.problems)
    return _build(path, values, arrays)


def _check_semantics(loader: _Loader, values: dict, arrays: dict) -> None:
    """Checks that span keys: secrets readable, templates present, names consistent."""
    mb = values["mailbot"]
    if (
        "default_language" in mb
        and "languages" in mb
        and mb["default_language"] not in mb["languages"]
    ):
        loader.problem("mailbot", "default_language", "must be one of [mailbot] languages")
    oauth_users = []
    for section in ("inbound.imap", "outbound"):
        sec = values[section]
        in_use = (
            sec.get("enabled", False)
            if section == "inbound.imap"
            else sec.get("transport") == "smtp" and sec.get("username")
        )
        oauth = sec.get("auth") == "oauth2"
        _check_secret(loader, section, sec, required=bool(in_use) and not oauth)
        if oauth and not sec.get("username"):
            loader.problem(section, "username", "the mailbox to sign in as is needed for oauth2")
        if oauth and in_use:
            oauth_users.append(section)
    from mailbot.oauth import check_oauth2

    check_oauth2(loader.problem, values["oauth2"], required_by=oauth_users)
    route_text = values["urgent"].get("route_text", {})
    for language in mb.get("languages", ()) if route_text else ():
        if language not in route_text:
            loader.problem("urgent", "route_text", f"no text for language {language!r}")
    hours = values["hours"]
    if "open" in hours and "close" in hours and hours["open"] >= hours["close"]:
        loader.problem("hours", "close", "must be later than open")
    if "templates" in mb and "languages" in mb:
        from mailbot.templates import missing_templates

        for problem in missing_templates(mb["templates"], mb["languages"]):
            loader.problem("mailbot", "templates", problem)
    agent_emails = {a.get("email") for a in arrays["agents"]}
    taken: dict[str, int] = {}  # folded topic name → the topic that has it
    for i, topic in enumerate(arrays["topics"]):
        for email in topic.get("agents", ()):
            if email not in agent_emails:
                loader.problem(f"topics.{i}", "agents", f"{email} is not in [[agents]]")
        for language, _ in topic.get("names", ()):
            if language not in mb.get("languages", (language,)):
                loader.problem(f"topics.{i}", "names", f"{language} is not in [mailbot] languages")
        names = (topic.get("name", ""), *dict(topic.get("names", ())).values())
        for spelling in sorted({fold(n) for n in names} - {""}):
            if spelling in taken:
                also = f"{spelling!r} is also a name of topics.{taken[spelling]}"
                loader.problem(f"topics.{i}", "names", also)
            taken.setdefault(spelling, i)
    _check_mailboxes(loader, values, arrays, taken)


def _check_mailboxes(loader: _Loader, values: dict, arrays: dict, topics: dict[str, int]) -> None:
    """[[mailboxes]]: one entry per address, known languages and topics, folders of their own."""
    mb, imap = values["mailbot"], values["inbound.imap"]
    agents = {a.get("email") for a in arrays["agents"]}
    addresses: dict[str, int] = {}
    folders: dict[str, int] = {}
    for i, box in enumerate(arrays["mailboxes"]):
        section, address = f"mailboxes.{i}", box.get("address")
        if address in addresses:
            loader.problem(section, "address", f"{address} is also mailboxes.{addresses[address]}")
        elif address:
            addresses[address] = i
        if address in agents:
            loader.problem(section, "address", f"{address} is an agent's address")
        language = box.get("default_language")
        if language and language not in mb.get("languages", (language,)):
            loader.problem(section, "default_language", f"{language} is not in [mailbot] languages")
        topic = box.get("topic")
        if topic and fold(" ".join(topic.split())) not in topics:
            loader.problem(section, "topic", f"{topic!r} is not a name of any [[topics]] entry")
        folder = box.get("folder")
        if folder and folder == imap.get("processed_folder"):
            loader.problem(
                section, "folder", f"{folder!r} is [inbound.imap] processed_folder: mail moved"
                " there would be read again"
            )
        elif folder and folder_key(folder) in folders:
            loader.problem(
                section, "folder", f"{folder!r} is also the folder of mailboxes."
                f"{folders[folder_key(folder)]} (mailboxes sharing a folder leave folder out:"
                " their mail is told apart by recipient)"
            )
        elif folder:
            folders[folder_key(folder)] = i


def folder_key(folder: str) -> str:
    """IMAP folder names compare exactly, but INBOX in any case is the inbox (RFC 3501)."""
    return "INBOX" if folder.upper() == "INBOX" else folder


def _check_consistency(loader: _Loader, values: dict, arrays: dict) -> None:
    """Mistakes that load fine one key at a time: duplicates, orderings, unknown regions."""
    seen: dict[str, int] = {}
    for i, agent in enumerate(arrays["agents"]):
        email = agent.get("email")
        if email in seen:
            loader.problem(f"agents.{i}", "email", f"{email} is also agents.{seen[email]}")
        seen.setdefault(email, i)
    served: dict[str, int] = {}
    for i, manager in enumerate(arrays["managers"]):
        for customer in manager.get("customers", ()):
            if customer in served and served[customer] != i:
                also = f"{customer} is also a customer of managers.{served[customer]}"
                loader.problem(f"managers.{i}", "customers", also)
            served.setdefault(customer, i)
    hours = values["hours"]
    if hours.get("subdivision") and hours.get("holidays"):
        import holidays

        country = hours["holidays"]
        known = holidays.list_supported_countries().get(country, [])
        if hours["subdivision"] not in known:
            choices = f"one of {', '.join(known)}" if known else f'"" ({country} has none)'
            loader.problem(
                "hours",
                "subdivision",
                f"unknown subdivision {hours['subdivision']!r} of {country}; use {choices}",
            )
    sla = values["sla"]
    if "first_response" in sla and "open" in hours and "close" in hours:
        day = (hours["close"].hour - hours["open"].hour) * 3600 + (
            hours["close"].minute - hours["open"].minute
        ) * 60

        def length(duration: Duration) -> int:
            return duration.business_days * day + duration.seconds

        first = sla["first_response"]
        for warn in sla.get("warn_before", ()):
            if length(warn) >= length(first):
                loader.problem(
                    "sla",
                    "warn_before",
                    f"{warn} is not shorter than first_response ({first}):"
                    " the warning would come at or before arrival",
                )
    urgent = values["urgent"]
    warn, limit = urgent.get("abuse_warn"), urgent.get("abuse_limit")
    if warn and limit and limit < warn:
        loader.problem(
            "urgent",
            "abuse_limit",
            f"{limit} is below abuse_warn ({warn}): customers would lose"
            " the manager before being warned",
        )


def _check_secret(loader: _Loader, section: str, sec: dict, required: bool) -> None:
    env, file = sec.get("password_env"), sec.get("password_file")
    if env and file:
        loader.problem(section, "password_env", "give password_env or password_file, not both")
    if file and not str(file).startswith(CREDENTIALS):
        try:
            file.read_text(encoding="utf-8")
        except OSError as exc:
            loader.problem(section, "password_file", f"cannot read {file}: {exc.strerror}")
    elif env and required and env not in os.environ:
        loader.problem(section, "password_env", f"environment variable {env} is not set")
    elif required and not env and not file:
        loader.problem(section, "password_env", "a password_env or password_file is needed")


def _notifications(values: dict, opens: time) -> Notifications:
    digest = values["digest"]
    return Notifications(
        digest=opens if digest is AT_OPENING else digest,
        attachments_max=values["attachments_max"],
        text_max=values["text_max"],
    )


def _mailboxes(
    mb: dict, imap: dict, entries: list[dict], topics: tuple[Topic, ...]
) -> tuple[Mailbox, ...]:
    """The support addresses, the [mailbot] address first: listed in [[mailboxes]] or not,
    it is the default mailbox. Keys left out take the [mailbot] and [inbound.imap] values."""

    def topic(name: str) -> str | None:
        wanted = fold(" ".join(name.split()))
        return next((t.name for t in topics if wanted in t.spellings()), None) if name else None

    boxes = [
        Mailbox(
            address=e["address"],
            name=e["name"] or mb["name"],
            default_language=e["default_language"] or mb["default_language"],
            topic=topic(e["topic"]),
            folder=e["folder"] or imap["folder"],
        )
        for e in entries
    ]
    default = next((b for b in boxes if b.address == mb["address"]), None) or Mailbox(
        mb["address"], mb["name"], mb["default_language"], None, imap["folder"]
    )
    return (default, *(b for b in boxes if b is not default))


def _oauth2(values: dict) -> OAuth2 | None:
    if not values["provider"]:
        return None
    from mailbot.oauth import DEFAULT_SCOPES

    return OAuth2(
        provider=values["provider"],
        tenant=values["tenant"],
        client_id=values["client_id"],
        client_secret=Secret(values["client_secret_env"] or None, values["client_secret_file"]),
        certificate_file=values["certificate_file"],
        service_account_file=values["service_account_file"],
        token_url=values["token_url"],
        refresh_token=Secret(values["refresh_token_env"] or None, values["refresh_token_file"]),
        scopes=values["scopes"] or DEFAULT_SCOPES[values["provider"]],
        authority=values["authority"],
        cafile=values["cafile"],
    )


def _build(path: Path, values: dict, arrays: dict) -> Config:
    mb, smtp, imap, out = (
        values["mailbot"],
        values["inbound.smtp"],
        values["inbound.imap"],
        values["outbound"],
    )
    host, port = smtp.pop("listen")
    hours = values["hours"]
    topics = tuple(Topic(**t) for t in arrays["topics"])
    mailboxes = _mailboxes(mb, imap, arrays["mailboxes"], topics)
    return Config(
        path=path.resolve(),
        mailbot=MailbotSection(**mb),
        smtp=SmtpInbound(**smtp, host=host, port=port),
        imap=ImapInbound(
            password=Secret(imap.pop("password_env") or None, imap.pop("password_file")), **imap
        ),
        outbound=Outbound(
            password=Secret(out.pop("password_env") or None, out.pop("password_file")), **out
        ),
        hours=Hours(
            days=hours["days"],
            opens=hours["open"],
            closes=hours["close"],
            holidays=hours["holidays"],
            subdivision=hours["subdivision"],
            extra_holidays=hours["extra_holidays"],
        ),
        sla=Sla(**values["sla"]),
        urgent=Urgent(**values["urgent"]),
        limits=Limits(**values["limits"]),
        thanks=ThanksRules(**values["thanks"]),
        notifications=_notifications(values["notifications"], hours["open"]),
        oauth2=_oauth2(values["oauth2"]),
        retention=Retention(**values["retention"]),
        agents=tuple(Agent(**a) for a in arrays["agents"]),
        managers=tuple(Manager(**m) for m in arrays["managers"]),
        metrics=Metrics(*values["metrics"]["listen"]),
        logging=Logging(**values["logging"]),
        topics=topics,
        mailboxes=mailboxes,
    )
