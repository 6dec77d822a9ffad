"""The caja registry (Syscafe's "Definir rutas"): names, roots, IPs and voucher codes.

Rules kept here: a name, a root and a code belong to one caja; a code that
already has vouchers imported from a caja never moves to another one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import zoneinfo
from contextlib import contextmanager
from dataclasses import dataclass, field

from peewee import IntegrityError, fn

from . import bounded
from .caja import layout
from .db import write_transaction
from .db.models import Caja, CajaCode, Voucher, utcnow
from .errors import CredentialsRefused, RegistryError, UnknownCaja, Unreachable, UsageError
from .storage import normalise_root, open_root, root_key
from .storage.probe import SMB_PORTS, tcp_answers

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_CODE = re.compile(r"^[A-Za-z0-9_]{1,20}$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,253}[A-Za-z0-9])?$|^[0-9a-fA-F:]+$")


@dataclass
class CajaJson:
    caja: str | None = None
    codes: list[str] = field(default_factory=list)
    timezone: str | None = None  # the calendar the caja files its day folders by
    problem: str | None = None  # why it could not be used, if it could not
    credentials_refused: bool = False  # an smb:// root whose server would not take its user and password


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UsageError(f"caja name {name!r} is not usable; use letters, digits, '_', '-' or '.', like CAJA2.")
    return name


def check_code(code: str) -> str:
    if not _CODE.match(code or ""):
        raise UsageError(f"voucher code {code!r} is not usable; use letters, digits or '_', like FV2.")
    return code


def check_ip(ip: str | None) -> str | None:
    if ip is None or ip == "":
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        pass
    # Digits and dots that are not an address (300.1.1.1) are a typo, not a host name.
    if re.fullmatch(r"[0-9.]+", ip) or not _HOST.match(ip):
        raise UsageError(f"IP {ip!r} is neither an IP address nor a host name; give one like 192.168.1.12.")
    return ip


def read_caja_json(root: str, timeout: float, config=None, caja: str | None = None) -> CajaJson:
    """The root's caja.json, or the reason it cannot be used."""
    storage = open_root(root, config, caja)
    try:
        raw = bounded.call(lambda: storage.read(layout.CAJA_JSON, limit=64 * 1024), timeout, f"reading {root}")
    except FileNotFoundError:
        return CajaJson(problem=f"{root} has no {layout.CAJA_JSON}")
    except CredentialsRefused as exc:
        storage.forget()
        return CajaJson(problem=str(exc), credentials_refused=True)
    except (OSError, Unreachable, bounded.TimedOut) as exc:
        storage.forget()
        return CajaJson(problem=f"{root} could not be read ({exc})")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return CajaJson(problem=f"{root}/{layout.CAJA_JSON} is not valid JSON ({exc})")
    if not isinstance(data, dict):
        return CajaJson(problem=f"{root}/{layout.CAJA_JSON} is not a JSON object")
    codes = data.get("codes", [])
    if not isinstance(codes, list) or not all(isinstance(c, str) and _CODE.match(c) for c in codes):
        return CajaJson(problem=f"{root}/{layout.CAJA_JSON}: \"codes\" must be a list of codes like [\"FV2\", \"NC2\"]")
    name, tz = data.get("caja"), data.get("timezone")
    return CajaJson(caja=name if isinstance(name, str) else None, codes=codes, timezone=tz if isinstance(tz, str) else None)


def known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def same_calendar(a: str, b: str) -> bool:
    """Whether two time zone names give the same local time all year (America/Bogota and America/Lima do)."""
    if a == b:
        return True
    try:
        za, zb = zoneinfo.ZoneInfo(a), zoneinfo.ZoneInfo(b)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    year = dt.datetime.now(dt.timezone.utc).year
    moments = [dt.datetime(year, month, 15, 12, tzinfo=dt.timezone.utc) for month in range(1, 13)]
    return all(m.astimezone(za).utcoffset() == m.astimezone(zb).utcoffset() for m in moments)


def disagreements(name: str, codes: list[str], cj: CajaJson, company_tz: str | None = None) -> list[str]:
    """What caja.json says that the registry (or, given `company_tz`, the company's sync.timezone) does not:
    reported, never applied silently."""
    if cj.problem:
        return []
    out = []
    if company_tz and cj.timezone and not known_zone(cj.timezone):
        out.append(f"caja.json's timezone {cj.timezone!r} is not a time zone name known here; write one like "
                   f"{company_tz!r}, the company's (sync.timezone)")
    elif company_tz and cj.timezone and not same_calendar(cj.timezone, company_tz):
        out.append(f"caja.json keeps time in {cj.timezone!r}, the company in {company_tz!r} (sync.timezone): the caja "
                   "files its day folders by one calendar and the main server checks their dates by the other; "
                   "make them the same")
    if cj.caja and cj.caja != name:
        out.append(f"caja.json names this caja {cj.caja!r}, the registry {name!r}")
    only_json = sorted(set(cj.codes) - set(codes))
    only_registry = sorted(set(codes) - set(cj.codes))
    if only_json:
        out.append(f"caja.json lists codes {', '.join(only_json)} that are not registered to {name} (add them with `caja edit {name} --code …`)")
    if only_registry:
        out.append(f"codes {', '.join(only_registry)} are registered to {name} but not in its caja.json")
    return out


def _company_tz(config) -> str | None:
    return config.get("sync", "timezone") if config is not None else None


def get(name: str) -> Caja:
    caja = Caja.get_or_none(Caja.name == name)
    if caja is None:
        known = ", ".join(c.name for c in Caja.select().order_by(Caja.name)) or "none yet"
        raise UnknownCaja(f"no caja is named {name!r} (registered: {known}); see `syscafe-sync caja list`.")
    return caja


def all_cajas() -> list[Caja]:
    return list(Caja.select().order_by(Caja.name))


def select(names: list[str] | tuple[str, ...]) -> list[Caja]:
    """The named cajas, every caja when no name is given; unknown names are refused."""
    if not names:
        return all_cajas()
    return [get(n) for n in names]


def codes_of(caja: Caja) -> list[str]:
    return [c.code for c in CajaCode.select().where(CajaCode.caja == caja).order_by(CajaCode.code)]


def code_owner() -> dict[str, str]:
    return {code: name for code, name in CajaCode.select(CajaCode.code, Caja.name).join(Caja).tuples()}


def _check_codes_free(name: str, codes: list[str]) -> None:
    owners = code_owner()
    for code in codes:
        owner = owners.get(code)
        if owner and owner != name:
            raise RegistryError(f"voucher code {code} already belongs to caja {owner}; a code belongs to one caja only.")
        history = (
            Voucher.select(Voucher.caja).where((Voucher.code == code) & (Voucher.caja != name)).limit(1).scalar()
        )
        if history:
            raise RegistryError(
                f"voucher code {code} has vouchers imported from caja {history}; a code never moves to another caja."
            )


def _check_name_free(name: str) -> None:
    if Caja.get_or_none(Caja.name == name):
        raise RegistryError(f"a caja named {name} is already registered; pick another name or use `caja edit {name}`.")


def _check_root_free(name: str, key: str, root: str) -> None:
    # Each stored root's key is also computed anew: a caja registered before root_key folded UNC
    # spellings keeps its old key in the database, which the new key of the same folder would miss.
    for other in Caja.select(Caja.name, Caja.root, Caja.root_key).where(Caja.name != name):
        if key in (other.root_key, root_key(other.root)):
            raise RegistryError(f"root {root} is already the root of caja {other.name}; each caja has its own folder.")


@contextmanager
def _refusing_clashes(name: str, done: str, recheck):
    """Around a write transaction that the registry's unique indexes may refuse: on PostgreSQL a
    transaction does not see the caja another one has not committed yet, so two `caja add` at once
    both pass their checks and the index makes the second fail once the first commits. `recheck`,
    run after the rollback, sees that caja and refuses naming it, as it would have a moment later."""
    try:
        yield
    except IntegrityError as exc:
        recheck()
        raise RegistryError(f"caja {name} was not {done}: another command registered the same name, root or voucher "
                            f"code at the same moment ({exc}); see `syscafe-sync caja list` and try again.") from exc


@dataclass
class Registered:
    caja: Caja
    codes: list[str]
    warnings: list[str]


def add(name: str, root: str, ip: str | None = None, codes: list[str] | tuple[str, ...] = (), timeout: float = 5.0,
        config=None) -> Registered:
    check_name(name)
    root = normalise_root(root)
    ip = check_ip(ip)
    given = [check_code(c) for c in codes]
    key = root_key(root)
    # Checked here too so that a taken name or root is refused without waiting on the root's caja.json.
    _check_name_free(name)
    _check_root_free(name, key, root)
    cj = read_caja_json(root, timeout, config, name)
    if cj.credentials_refused:
        # Registering a root we know we cannot open would only fail every pass from now on.
        raise RegistryError(f"caja {name} was not registered: {cj.problem}")
    final = list(dict.fromkeys(given or cj.codes))
    if not final:
        why = f" ({cj.problem})" if cj.problem else ""
        raise RegistryError(f"caja {name} has no voucher codes{why}; give them with --code, e.g. --code FV2 --code NC2.")
    warnings = [cj.problem] if cj.problem else []
    warnings += disagreements(name, final, cj, _company_tz(config))

    def check_free() -> None:
        _check_name_free(name)
        _check_root_free(name, key, root)
        _check_codes_free(name, final)

    # Checked again inside the transaction: another `caja add` may have registered the name or the
    # root while caja.json was being read.
    with _refusing_clashes(name, "registered", check_free), write_transaction():
        check_free()
        now = utcnow()
        caja = Caja.create(name=name, root=root, root_key=key, ip=ip, created_at=now, updated_at=now)
        CajaCode.insert_many([{"code": c, "caja": caja} for c in final]).execute()
    return Registered(caja, final, warnings)


def edit(
    name: str,
    *,
    new_name: str | None = None,
    root: str | None = None,
    ip: str | None = None,
    add_codes: list[str] | tuple[str, ...] = (),
    remove_codes: list[str] | tuple[str, ...] = (),
    timeout: float = 5.0,
    config=None,
) -> Registered:
    def recheck() -> None:
        # Against the registry as it was before this edit, which the rollback left untouched.
        if new_name and new_name != name:
            _check_name_free(new_name)
        if root is not None:
            normal = normalise_root(root)
            _check_root_free(name, root_key(normal), normal)
        _check_codes_free(name, list(add_codes))

    with _refusing_clashes(name, "changed", recheck), write_transaction():
        caja = get(name)
        if new_name and new_name != name:
            check_name(new_name)
            if Caja.get_or_none(Caja.name == new_name):
                raise RegistryError(f"a caja named {new_name} is already registered; pick another name.")
            if Voucher.select().where(Voucher.caja == name).exists():
                raise RegistryError(
                    f"caja {name} has imported vouchers under its name; register a new caja instead of renaming it."
                )
            caja.name = new_name
        if root is not None:
            root = normalise_root(root)
            key = root_key(root)
            _check_root_free(caja.name, key, root)
            caja.root, caja.root_key = root, key
        if ip is not None:
            caja.ip = check_ip(ip)
        current = codes_of(caja)
        for code in remove_codes:
            if code not in current:
                raise RegistryError(f"voucher code {code} is not registered to caja {name} (its codes: {', '.join(current)}).")
        added = [check_code(c) for c in dict.fromkeys(add_codes) if c not in current]
        _check_codes_free(caja.name, added)
        remaining = [c for c in current if c not in remove_codes] + added
        if not remaining:
            raise RegistryError(f"caja {name} would be left with no voucher code; add one with --code before removing the last.")
        caja.updated_at = utcnow()
        caja.save()
        if remove_codes:
            CajaCode.delete().where((CajaCode.caja == caja) & CajaCode.code.in_(list(remove_codes))).execute()
        if added:
            CajaCode.insert_many([{"code": c, "caja": caja} for c in added]).execute()
    cj = read_caja_json(caja.root, timeout, config, caja.name)
    warnings = ([cj.problem] if cj.problem else []) + disagreements(caja.name, remaining, cj, _company_tz(config))
    return Registered(caja, sorted(remaining), warnings)


def remove(name: str) -> int:
    """Forgets the caja; its imported vouchers stay. Returns how many vouchers it leaves behind."""
    with write_transaction():
        caja = get(name)
        kept = Voucher.select(fn.COUNT(Voucher.id)).where(Voucher.caja == name).scalar()
        caja.delete_instance(recursive=True)
    return kept


def ip_answers(ip: str, timeout: float, ports: tuple[int, ...] = SMB_PORTS) -> bool:
    """A TCP connect to `ports` (probe.ports_for says which for a root), no ICMP needed, within `timeout` in all."""
    return tcp_answers(ip, ports, timeout)
