"""Defaults, the configuration file and its validation.

Every default lives in DEFAULTS; the file `config.toml` in home overrides it,
the environment overrides the file for the home and the database, and options
override both. The database's URL: --db, SYSCAFE_SYNC_DB, `[database] url`, the
SQLite file in home, in that order.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import platformdirs

from .errors import ConfigError, NotInitialised

APP = "syscafe-sync"
CONFIG_FILE = "config.toml"
DB_FILE = "syscafe-sync.db"
LOG_DIR = "logs"
LOG_FILE = "syscafe-sync.log"

DEFAULTS: dict[str, dict[str, object]] = {
    "database": {
        # The main database's URL; empty: the SQLite file in home. --db and SYSCAFE_SYNC_DB win over it.
        "url": "",
    },
    "sync": {
        # Minutes between two passes of the service; decimals allowed, so a float: validate() takes each type from here.
        "interval_minutes": 5.0,
        "timezone": "America/Bogota",
        # After downtime the service imports every day not closed yet (no closing.json), this many days back (today included).
        "catch_up_days": 7,
        # Local folders only: a new voucher file starts that caja's import at once (the interval stays the guarantee).
        "watch": True,
        # Seconds a file event waits for the next ones before the import starts.
        "watch_debounce_s": 2.0,
        # A caja failing this many passes in a row is logged at error level, once, and again when it recovers.
        "alert_after_failures": 3,
        # Several services on one PostgreSQL database split the cajas between them (`daemon --shared`).
        "shared": False,
    },
    "limits": {
        # A voucher file larger than this is refused (SPEC: 1 MiB).
        "max_file_bytes": 1024 * 1024,
        # How long a caja root may take to answer a listing before it is unreachable.
        "connect_timeout_s": 5.0,
        # The most one caja may take in one action before it is cut off.
        "caja_timeout_s": 600.0,
        # How long a run waits for another run on the same caja before saying "busy".
        "lock_wait_s": 30.0,
        # A lease not renewed for this long is free again (a killed run's lock).
        "lease_s": 120.0,
        # Vouchers written to the database in one transaction.
        "batch_size": 500,
        # Cajas served at once by a full pass (`sync`, the service) and by `catalogs push`.
        "workers": 4,
        # Files read at once from one smb:// caja: each costs several network round trips.
        "smb_read_workers": 8,
        # The most one read, write or listing on an smb:// caja may take: smbprotocol has no
        # time-out of its own, and a server frozen mid-pass would otherwise hold the caja for caja_timeout_s.
        "smb_step_timeout_s": 30.0,
    },
    "accounting": {
        # Where `accounting post` sends entries unless --to says: csv, json (files in export_dir) or http.
        "destination": "csv",
        # The folder for csv / json exports; empty means HOME/accounting.
        "export_dir": "",
        # The accounting API that --to http posts each entry to.
        "url": "",
        # Its bearer token; empty means the environment variable SYSCAFE_SYNC_ACCOUNTING_TOKEN.
        "token": "",
        # Seconds one request may take; attempts after the first; the first wait between them (doubling).
        "timeout_s": 10.0,
        "retries": 4,
        "backoff_s": 0.5,
    },
    "log": {
        "retention_days": 90,
        "file_max_bytes": 10 * 1024 * 1024,
        "file_backups": 5,
    },
}

# The placeholders name their section ({sync[watch]}): two sections may have a key of the same name (url).
TEMPLATE = """\
# syscafe-sync configuration. Every value here has a default; delete a line to use it.

[database]
# The main database. Empty: the SQLite file syscafe-sync.db in this home. For PostgreSQL, e.g.
# "postgresql://syscafe@dbserver/syscafe" (a password goes in ~/.pgpass, not here).
# The option --db and the environment variable SYSCAFE_SYNC_DB win over this line.
url = "{database[url]}"

[sync]
# Minutes between two passes of the service (decimals allowed: 0.5 is 30 s).
interval_minutes = {sync[interval_minutes]}
# The company's time zone: the process date is "today" there.
timezone = "{sync[timezone]}"
# After downtime, days back (today included) the service still imports what it missed.
catch_up_days = {sync[catch_up_days]}
# Local folders: start a caja's import as soon as a voucher file appears (true/false).
# Network shares deliver no reliable events; the interval is the guarantee there.
watch = {sync[watch]}
# Seconds to wait for more file events before that import starts.
watch_debounce_s = {sync[watch_debounce_s]}
# Failing passes in a row before a caja is logged at error level (once; again on recovery).
alert_after_failures = {sync[alert_after_failures]}
# Several services on one PostgreSQL database: each serves a share of the cajas and takes over
# those of one that stops (true/false; every service of that database must say true).
shared = {sync[shared]}

[limits]
# A voucher file larger than this many bytes is refused.
max_file_bytes = {limits[max_file_bytes]}
# Seconds a caja root may take to answer before it is reported unreachable.
connect_timeout_s = {limits[connect_timeout_s]}
# Seconds one caja may take in one action before it is cut off.
caja_timeout_s = {limits[caja_timeout_s]}
# Seconds a run waits for another run on the same caja before saying "busy".
lock_wait_s = {limits[lock_wait_s]}
# Seconds after which the lock of a run that died is free again.
lease_s = {limits[lease_s]}
# Vouchers written to the database per transaction.
batch_size = {limits[batch_size]}
# Cajas served at once by a full pass (`sync`, the service) and by `catalogs push`.
workers = {limits[workers]}
# Files read at once from one smb:// caja (first and overwrite imports read many).
smb_read_workers = {limits[smb_read_workers]}
# Seconds one read, write or listing on an smb:// caja may take before that caja's action fails
# and its connection is dropped (a server that stopped answering mid-pass).
smb_step_timeout_s = {limits[smb_step_timeout_s]}

# Credentials for smb:// roots (never put a password in the root itself):
# [smb.hosts."192.168.1.12"]
# username = "syscafe"
# password = "…"
# or per caja, which wins over the host:
# [smb.cajas."CAJA2"]
# password = "…"
# Failing both, the environment: SYSCAFE_SYNC_SMB_USERNAME, SYSCAFE_SYNC_SMB_PASSWORD.

[accounting]
# Where `accounting post` sends journal entries unless --to says: "csv" or "json" (a file per run in
# export_dir) or "http" (the accounting API at url).
destination = "{accounting[destination]}"
# Folder for csv / json exports; empty: the folder accounting/ in home.
export_dir = "{accounting[export_dir]}"
# The accounting API, e.g. "https://contabilidad.example.com/api/entries".
url = "{accounting[url]}"
# Its bearer token. Better left empty here and given in the environment: SYSCAFE_SYNC_ACCOUNTING_TOKEN.
token = "{accounting[token]}"
# Seconds one request may take, attempts after the first, and the first wait between them (it doubles).
timeout_s = {accounting[timeout_s]}
retries = {accounting[retries]}
backoff_s = {accounting[backoff_s]}

[log]
# Days the sync log keeps its rows in the database.
retention_days = {log[retention_days]}
# Size of the rotating JSON log file before it rolls over, and how many old files stay.
file_max_bytes = {log[file_max_bytes]}
file_backups = {log[file_backups]}
"""

# Sections read as they are, by the code that owns them (smb credentials per host).
PASSTHROUGH = ("smb",)

_TYPES = {float: (int, float), int: (int,), str: (str,), bool: (bool,)}


@dataclass(frozen=True)
class Config:
    home: Path
    db_url: str
    # Not in the repr: it holds the smb passwords, and a repr ends up in tracebacks.
    values: dict[str, dict[str, object]] = field(default_factory=dict, repr=False)

    def get(self, section: str, key: str):
        return self.values[section][key]

    @property
    def timezone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.get("sync", "timezone"))

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        return self.home / LOG_DIR / LOG_FILE

    @property
    def limits(self) -> dict[str, object]:
        return self.values["limits"]


def default_home() -> Path:
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def resolve_home(home: str | os.PathLike | None) -> Path:
    if home:
        return Path(home).expanduser().absolute()
    env = os.environ.get("SYSCAFE_SYNC_HOME")
    if env:
        return Path(env).expanduser().absolute()
    return default_home()


def default_db_url(home: Path) -> str:
    return f"sqlite:///{(home / DB_FILE).as_posix()}"


def load(home: str | os.PathLike | None = None, db_url: str | None = None, *, must_exist: bool = True) -> Config:
    """Reads home's configuration over the defaults; refuses what it cannot use."""
    home_path = resolve_home(home)
    values = {section: dict(keys) for section, keys in DEFAULTS.items()}
    path = home_path / CONFIG_FILE
    if path.exists():
        try:
            # utf-8-sig: Windows Notepad may start the file with a byte order mark, which TOML does not allow.
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML ({exc}); fix the file or delete it and run `syscafe-sync init`.") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not UTF-8 text ({exc}); save it again as UTF-8 (in Notepad: Save as, "
                              "Encoding UTF-8) or delete it and run `syscafe-sync init`.") from exc
        except OSError as exc:  # a file copied in by root, 0600: the service's account cannot read it
            raise ConfigError(f"cannot read {path} ({exc.strerror or exc}); give the account that runs syscafe-sync "
                              "(the service's) read access to it.") from exc
        _merge(values, data, path)
    elif must_exist:
        raise NotInitialised(f"{home_path} has no {CONFIG_FILE}; run `syscafe-sync --home {home_path} init` first.")
    # option > environment > the file > the SQLite file in home
    url = db_url or os.environ.get("SYSCAFE_SYNC_DB") or values["database"]["url"] or default_db_url(home_path)
    config = Config(home=home_path, db_url=url, values=values)
    validate(config)
    return config


def _check_db_url(config: Config) -> None:
    """Refuses a database URL that would open another database than the one it names, or none."""
    url = config.db_url
    given = url not in (config.values["database"]["url"], default_db_url(config.home))
    if given:
        where = "--db / SYSCAFE_SYNC_DB"
    elif config.values["database"]["url"]:
        where = f"{config.config_path}: database.url"
    else:
        where = f"the home {config.home}"
    parsed = parse_db_url(url, lambda shown: f"{where}: the database URL {shown!r}", ConfigError)
    if parsed.scheme.split("+")[0] != "sqlite":
        return
    path = url.partition(":///")[2]
    if parsed.fragment or parsed.query or "#" in path or "?" in path:
        # The URL parser stops the path at "#" or "?": the database would be a file elsewhere, named after part of it.
        fix = ("use a home whose path has neither, or keep it and give --db sqlite:///PATH naming a file elsewhere"
               if where.startswith("the home") else "name a file whose path has neither")
        raise ConfigError(f"{where}: the database path {path!r} holds '#' or '?', which a sqlite:/// URL cannot carry; "
                          f"{fix}.")
    if path and path != ":memory:" and not given and not Path(path).is_absolute():
        # Relative to the folder a command happens to run in: the service and a person's shell would use two databases.
        raise ConfigError(f"{where} = {url!r} names a relative path; give the full path, e.g. "
                          f"\"sqlite:///{(config.home / path).as_posix()}\", so every command and the service open the same file.")


def parse_db_url(url: str, named, error: type[Exception]):
    """urlparse(url), port included; for a URL that does not parse, `error` saying so and how to spell it, the URL
    named by named(the URL with its password masked), as db.redact itself cannot parse such a URL."""
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - parsing the port is what raises for "host:abc"
    except ValueError as exc:
        raise error(f"{named(mask_password(url))} cannot be read ({exc}); write it as "
                    "postgresql://USER@HOST[:PORT]/DBNAME or sqlite:///PATH.") from None
    return parsed


# libpq takes a password in the query too (postgresql://u@h/db?password=…).
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def mask_password(url: str) -> str:
    """The URL without what may be a password, for a URL too broken for db.redact to parse."""
    url = mask_query_password(url)
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def mask_query_password(url: str) -> str:
    return _QUERY_PASSWORD.sub(r"\1***", url)


def has_query_password(url: str) -> bool:
    return _QUERY_PASSWORD.search(url) is not None


def _merge(values: dict, data: dict, path: Path) -> None:
    for section, keys in data.items():
        if section in PASSTHROUGH:
            values[section] = keys
            continue
        if section not in DEFAULTS or not isinstance(keys, dict):
            raise ConfigError(f"{path}: unknown section [{section}]; the sections are {', '.join(DEFAULTS)}.")
        for key, value in keys.items():
            if key in DEFAULTS[section]:
                values[section][key] = value
            else:
                raise ConfigError(f"{path}: unknown setting {section}.{key}; the settings of [{section}] are {', '.join(DEFAULTS[section])}.")


def changed_settings(old: Config, new: Config) -> list[str]:
    """The names (section.key, never their values: [smb] holds passwords) of the settings `new` gives otherwise."""
    names = []
    for section in sorted(set(old.values) | set(new.values)):
        before, after = old.values.get(section, {}), new.values.get(section, {})
        names += [f"{section}.{key}" for key in sorted(set(before) | set(after), key=str) if before.get(key) != after.get(key)]
    return names


def validate(config: Config) -> None:
    for section, keys in DEFAULTS.items():
        for key, default in keys.items():
            value = config.values[section][key]
            wanted = _TYPES[type(default)]
            if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, wanted):
                raise ConfigError(f"{config.config_path}: {section}.{key} = {value!r} must be a {type(default).__name__} like {_toml(default)}.")
            if (section, key) == ("accounting", "retries"):
                if value < 0:  # 0 is meaningful: the first attempt only
                    raise ConfigError(f"{config.config_path}: {section}.{key} = {value!r} must be 0 (no retry after the first "
                                      "attempt) or more.")
            elif not isinstance(default, bool) and isinstance(default, (int, float)) and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{config.config_path}: {section}.{key} = {value!r} must be a finite number greater than zero.")
    if "smb" in config.values:
        from .storage.smb_url import validate_config

        validate_config(config.values["smb"], config.config_path)
    destination = config.values["accounting"]["destination"]
    if destination not in ("csv", "json", "http"):
        raise ConfigError(f"{config.config_path}: accounting.destination = {destination!r} must be \"csv\", \"json\" or \"http\".")
    _check_db_url(config)
    url = config.values["database"]["url"]
    if url:
        from .db import kind, redact

        if kind(url) is None:
            raise ConfigError(f"{config.config_path}: database.url = {redact(url)!r} is neither sqlite:///PATH nor "
                              "postgresql://USER@HOST/DBNAME; fix it, or delete the line to use the SQLite file in home.")
    tz = config.values["sync"]["timezone"]
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{config.config_path}: sync.timezone = {tz!r} is not a known time zone; use a name like \"America/Bogota\".") from exc


def _toml(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def write_default(home: Path) -> Path:
    """Writes the commented configuration with the defaults, unless one exists."""
    path = home / CONFIG_FILE
    if not path.exists():
        sections = {s: {k: _toml(v) if isinstance(v, bool) else v for k, v in keys.items()} for s, keys in DEFAULTS.items()}
        path.write_text(TEMPLATE.format(**sections), encoding="utf-8")
    return path
