"""`smb://[user@]host[:port]/share/path` roots: parsing, the stored form, and where the password comes from.

The password never travels in the root: a root is stored in the database,
printed by `caja list` and written in log lines. It comes from the
configuration (`[smb.cajas."NAME"]`, then `[smb.hosts."HOST"]`) or, failing
that, the environment (SPEC §2, "Credentials for smb:// roots").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from ..errors import ConfigError, UsageError

DEFAULT_PORT = 445
ENV_USERNAME = "SYSCAFE_SYNC_SMB_USERNAME"
ENV_PASSWORD = "SYSCAFE_SYNC_SMB_PASSWORD"
_BAD_PART = re.compile(r"[\\:*?\"<>|\x00]")
_ENTRY_KEYS = ("username", "password")
_SAFE = " !$&'()+,;=-._~\\"


def is_smb(root: str) -> bool:
    return root[:6].lower() == "smb://"


@dataclass(frozen=True)
class SmbUrl:
    host: str
    port: int
    user: str | None
    share: str
    parts: tuple[str, ...]
    explicit_port: bool

    @property
    def root(self) -> str:
        """The stored, printed form: no password, ever."""
        # Percent-encoded where a character would change how the URL reads back (`#`, `%`, `@`…).
        user = f"{quote(self.user, safe=_SAFE)}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.explicit_port else ""
        return f"smb://{user}{host}{port}/" + "/".join(quote(p, safe=_SAFE + "@") for p in (self.share, *self.parts))

    @property
    def key(self) -> str:
        """What two roots are compared by: SMB names are case-insensitive, and the user does not change the folder."""
        return f"smb://{self.host}:{self.port}/" + "/".join((self.share, *self.parts)).lower()

    @property
    def unc(self) -> str:
        return "\\\\" + "\\".join((self.host, self.share, *self.parts))


def parse(root: str) -> SmbUrl:
    """The root's parts, each checked; a password in the URL is refused with where to put it instead."""
    try:
        url = urlsplit(root.strip())
        port = url.port
    except ValueError as exc:
        # urllib's own words quote the text after ':', which is a password's start when the password holds
        # a '/', '?' or '#' (they end the host part): never shown.
        why = "the text after ':' in the host part is not a port number" if "Port" in str(exc) else "its host part does not parse"
        raise UsageError(f"root {_hide(root)!r} is not a usable smb:// URL ({why}); write it as smb://user@host[:port]/share/path, "
                         f"with the password in config.toml or {ENV_PASSWORD}, never in the root.") from None
    if port == 0:
        raise UsageError(f"root {_hide(root)!r}: port 0 is no port; write smb://user@host:PORT/share/path with the port "
                         f"the share is served on, or leave it out for {DEFAULT_PORT}.")
    if url.password is not None:
        raise UsageError(
            f"root {_hide(root)!r} holds a password, which would be stored and printed with the root; give the root as "
            f"smb://{url.username}@{url.hostname}/… and put the password in config.toml under [smb.hosts.\"{url.hostname}\"] "
            f"(password = \"…\") or in the environment variable {ENV_PASSWORD}."
        )
    if not url.hostname:
        raise UsageError(f"root {_hide(root)!r} names no host; write it as smb://user@host[:port]/share/path.")
    if url.query or url.fragment:
        raise UsageError(f"root {_hide(root)!r}: an smb:// root takes no '?' or '#' part; write it as smb://user@host[:port]/share/path.")
    # Split again once decoded: a '%2F' is a separator all the same, and "Datos%2F..%2Fotra" must meet the '..' check.
    parts = [q for p in url.path.split("/") for q in unquote(p).split("/") if q]
    if not parts:
        raise UsageError(f"root {_hide(root)!r} names no share; write it as smb://user@host[:port]/share/path.")
    for part in parts:
        if part in (".", "..") or _BAD_PART.search(part):
            # A part of a root that may hold a password (see _hide) may be the password's end.
            if _hide(root) != root:
                raise UsageError(f"root {_hide(root)!r}: one part is not a folder name; a password goes in config.toml or "
                                 f"{ENV_PASSWORD}, never in the root: write it as smb://user@host[:port]/share/path.")
            raise UsageError(f"root {root!r}: the part {part!r} is not a folder name; a caja root names a folder inside a share.")
    user = unquote(url.username) if url.username else None
    return SmbUrl(url.hostname.lower(), port or DEFAULT_PORT, user, parts[0], tuple(parts[1:]), port is not None)


def _hide(root: str) -> str:
    """The root with any password replaced, for messages: everything from the ':' after the user to
    the last '@'. A password may hold '@', '/', '#' or '?', so its end cannot be told from the URL's
    syntax; a root with a port and an '@' in a folder name is hidden more than it needs, never less."""
    return re.sub(r"(smb://[^:/@]*:).*@", r"\1***@", root, flags=re.IGNORECASE | re.DOTALL)


def hide_userinfo(root: str) -> str:
    """Any root (a mistyped URL, a UNC path) with what may be a password, from the ':' after a user to
    the last '@', hidden: for the messages that refuse roots which are not smb:// ones."""
    return re.sub(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?[\\/]*[^:\\/@]*:).*@", r"\1***@", root, flags=re.DOTALL)


@dataclass(frozen=True)
class Credentials:
    user: str | None
    password: str | None = None
    #: where the password came from, for messages (never the password itself)
    source: str | None = None

    def __repr__(self) -> str:  # a stray print or traceback must not show the password
        return f"Credentials(user={self.user!r}, password={'***' if self.password else None}, source={self.source!r})"


def credentials(url: SmbUrl, smb_config: dict | None, caja: str | None) -> Credentials:
    """Per caja, then per host, then the environment; a config entry naming another user is not used for this one."""
    smb_config = smb_config or {}
    entries = []
    if caja:
        entries.append((f'[smb.cajas."{caja}"]', _lookup(smb_config.get("cajas", {}), caja)))
    entries.append((f'[smb.hosts."{url.host}"]', _lookup(smb_config.get("hosts", {}), url.host)))
    user = url.user or next((e["username"] for _, e in entries if e and e.get("username")), None) or os.environ.get(ENV_USERNAME) or None
    for source, entry in entries:
        if entry and entry.get("password") and _same_user(entry.get("username"), user):
            return Credentials(user, entry["password"], f"{source} in config.toml")
    env = os.environ.get(ENV_PASSWORD)
    return Credentials(user, env or None, f"the environment variable {ENV_PASSWORD}" if env else None)


def _lookup(table: dict, name: str) -> dict | None:
    return next((v for k, v in table.items() if k.lower() == name.lower()), None)


def _same_user(configured: str | None, user: str | None) -> bool:
    return configured is None or user is None or configured.lower() == user.lower()


def validate_config(smb: object, path) -> None:
    """The [smb] section: hosts and cajas tables of username/password strings. Messages never show a value."""
    if not isinstance(smb, dict):
        raise ConfigError(f"{path}: [smb] must be a table with [smb.hosts.\"HOST\"] or [smb.cajas.\"NAME\"] entries.")
    for group, table in smb.items():
        if group not in ("hosts", "cajas") or not isinstance(table, dict):
            raise ConfigError(f"{path}: unknown setting smb.{group}; use [smb.hosts.\"HOST\"] or [smb.cajas.\"NAME\"] with username and password.")
        for name, entry in table.items():
            where = f'[smb.{group}."{name}"]'
            if not isinstance(entry, dict):
                raise ConfigError(f"{path}: {where} must be a table with username and password.")
            for key, value in entry.items():
                if key not in _ENTRY_KEYS:
                    raise ConfigError(f"{path}: {where} has an unknown key {key!r}; the keys are username and password.")
                if not isinstance(value, str) or not value:
                    raise ConfigError(f"{path}: {where} {key} must be a non-empty string in quotes.")
