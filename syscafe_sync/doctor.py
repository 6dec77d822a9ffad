"""`doctor`: pre-flight checks of the main server, each with a plain fix (SPEC `doctor`).

A check is ok, warn (worth a look, nothing is lost) or fail (something needs
fixing: `doctor` exits 1). Checks that need the database are skipped, with
the reason, when the database itself is the problem.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation

from peewee import fn

from . import db as db_mod
from . import catalogs, health, overview, push, registry, resolutions
from .caja import catalog as fmt
from .caja.catalog import KNOWN_KEYS
from .config import Config
from .db import migrations
from .errors import CredentialsRefused, SyncError, Unreachable
from .storage import open_root
from .db.models import Catalog, CatalogRecord, SyncLog, Voucher, VoucherLine, VoucherPayment, VoucherTax, utcnow

# Catalogs a caja needs to sell; loyalty_balances is computed by the main server itself.
NEEDED_CATALOGS = [c for c in KNOWN_KEYS if c != "loyalty_balances"]
# Vouchers of this many days back must find their payment methods, taxes, sellers and products in the catalogs.
COVER_DAYS = 30
# A resolution ending within this many days (the 30th included) needs its successor asked for now, unless one is
# recorded already; one used beyond this share needs it whatever is recorded, as a later one is not usable yet.
EXPIRY_DAYS = 30
USED_PERCENT = 90.0
NOTE_KINDS = {"adjustment_note", "credit_note"}
# The newest log row may be this far ahead of the clock before the clock is called wrong.
CLOCK_SKEW = dt.timedelta(minutes=5)
# Every caja's catalogs are read at once, as its POS reads them, within this (or limits.caja_timeout_s if
# shorter): a person waits for doctor, and 50,000 products are 7 MB a caja, under a second on a 100 Mbit/s LAN.
CAJA_CATALOGS_S = 60.0


@dataclass
class Check:
    check: str
    status: str  # ok | warn | fail
    message: str
    fix: str = ""


def run(config: Config, now: dt.datetime | None = None) -> list[Check]:
    now = now or utcnow()
    checks = [_home(config)]
    database = _database(config)
    checks.append(database)
    if database.status == "fail":
        return checks + [Check("the rest", "warn", "skipped: every other check needs the database", "fix the database first")]
    cajas = overview.overview(config, now)
    checks += _cajas(cajas)
    checks += _caja_catalogs(config, [r["name"] for r in cajas if r["reachable"]])
    checks.append(_codes(cajas))
    checks.append(_catalogs())
    checks.append(_catalogs_cover(config, now))
    checks += _resolutions(cajas, now.astimezone(config.timezone).date())
    checks.append(_accounting())
    checks.append(_clock(now, now.astimezone(config.timezone).date()))
    checks.append(_daemon(config, now))
    return checks


def failed(checks: list[Check]) -> bool:
    return any(c.status == "fail" for c in checks)


def as_dict(checks: list[Check]) -> dict:
    return {"ok": not failed(checks), "checks": [asdict(c) for c in checks]}


def _home(config: Config) -> Check:
    try:
        with tempfile.NamedTemporaryFile(dir=config.home, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("home writable", "fail", f"{config.home} cannot be written ({exc.strerror or exc})",
                     f"give the account that runs syscafe-sync write access to {config.home}, or choose another --home")
    return Check("home writable", "ok", f"{config.home}")


def _database(config: Config) -> Check:
    where = db_mod.redact(config.db_url)
    try:
        db_mod.require_file(config.db_url)
        database = db_mod.connect(config.db_url)
        version = migrations.current_version(database)
    except Exception as exc:  # whatever the driver raises, the person needs the same sentence
        return Check("database reachable", "fail", f"{where} cannot be opened ({exc})",
                     "check --db, SYSCAFE_SYNC_DB or database.url in config.toml and that the database server runs, then `syscafe-sync init`")
    if version > migrations.LATEST:  # every other command refuses it (migrations.refuse_newer)
        return Check("database reachable", "fail", f"{where}: schema version {version} is newer than this program knows "
                     f"({migrations.LATEST}): a later syscafe-sync upgraded it",
                     "install that later version again (pip install --upgrade syscafe-sync), or give --db another database")
    if version < migrations.LATEST:
        return Check("database reachable", "fail", f"{where}: schema version {version}, this program needs {migrations.LATEST}",
                     "run `syscafe-sync init` to upgrade the schema")
    return Check("database reachable", "ok", f"{where}, schema version {version}")


def _cajas(rows: list[dict]) -> list[Check]:
    if not rows:
        return [Check("cajas", "warn", "no caja is registered", "register each caja: `syscafe-sync caja add NAME --path ROOT`")]
    out = []
    for r in rows:
        name = r["name"]
        if not r["reachable"]:
            machine = "" if r["ip_answers"] is None else (" (the machine answers)" if r["ip_answers"] else " (the machine does not answer either)")
            out.append(Check(f"{name} reachable", "fail", f"{r['reason']}{machine}",
                             f"turn the caja on and share its folder, or correct it: `syscafe-sync caja edit {name} --path ROOT`"))
        else:
            out.append(Check(f"{name} reachable", "ok", r["root"]))
        if r["warnings"]:
            out.append(Check(f"{name} caja.json", "fail", "; ".join(r["warnings"]),
                             f"make caja.json at the caja agree with the registry (`syscafe-sync caja edit {name} --code …`) "
                             f"and with the company's sync.timezone"))
        elif r["reachable"]:
            out.append(Check(f"{name} caja.json", "ok", "agrees with the registry"))
    return out


def _read_caja_catalogs(config: Config, caja, out: dict) -> None:
    """{catalog: version, or why its POS cannot read it} into `out`; or `out["none"]` (nothing pushed yet),
    `out["manifest"]` (manifest.json is there but cannot be read: pushes fail on it too), `out["unread"]`
    (the root did not answer). Never raises: it runs in a thread of its own, whose error nobody would see."""
    try:
        storage = open_root(caja.root, config, caja.name)
        read = push.reader(storage)
        try:
            manifest = fmt.read_manifest(read)
        except FileNotFoundError:
            out["none"] = True
            return
        except fmt.CatalogError as exc:  # readable, but not a manifest: a total push writes a good one over it
            out["error"] = str(exc)
            return
        except (Unreachable, CredentialsRefused):
            raise
        except (OSError, SyncError) as exc:
            out["manifest"] = f"{push.MANIFEST} cannot be read ({_reason(exc)})"
            return
        for name in sorted(manifest["catalogs"]):
            try:
                out[name] = fmt.read_from(read, name, manifest).version
            except fmt.CatalogError as exc:
                out[name] = str(exc)
            except (Unreachable, CredentialsRefused):
                raise
            except (OSError, SyncError) as exc:
                out[name] = f"catalog {name!r}: a file its manifest names cannot be read ({_reason(exc)})"
    except (Unreachable, CredentialsRefused, OSError) as exc:
        out["unread"] = str(exc) if isinstance(exc, CredentialsRefused) else f"{caja.root} did not answer ({_reason(exc)})"
    except Exception as exc:  # the check reports it, as a failure of this caja, not a traceback on stderr
        out["unread"] = f"its catalogs could not be read ({type(exc).__name__}: {exc})"


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _caja_catalogs(config: Config, names: list[str]) -> list[Check]:
    """What the POS of each reachable caja reads: a catalog it refuses (damaged, edited by hand) fails, with
    the push that writes it whole again; one behind the main server's, or missing, is worth a look."""
    bound = min(CAJA_CATALOGS_S, config.limits["caja_timeout_s"])
    reads = {n: {} for n in names}
    threads = [threading.Thread(target=_read_caja_catalogs, args=(config, registry.get(n), reads[n]), daemon=True)
               for n in names]
    for t in threads:
        t.start()
    deadline = time.monotonic() + bound
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    main = {n: catalogs.get(n).version for n in catalogs.names()}
    out = []
    for name, t in zip(names, threads):
        got = dict(reads[name])  # a copy: a late thread may still write into the original
        check = f"{name} catalogs"
        if t.is_alive():
            out.append(Check(check, "warn", f"not read within {bound:g} s", "look again when the network is quieter: `syscafe-sync doctor`"))
        elif got.get("unread"):
            out.append(Check(check, "fail", got["unread"], "check that the caja is on and its folder shared, then run "
                             "`syscafe-sync doctor` again"))
        elif got.get("manifest"):
            out.append(Check(check, "fail", got["manifest"],
                             f"move aside what is at {push.MANIFEST} in {registry.get(name).root} (catalogs/ is the main "
                             f"server's alone), then `syscafe-sync catalogs push {name} --mode total`"))
        elif got.get("error"):
            out.append(Check(check, "fail", got["error"], f"`syscafe-sync catalogs push {name} --mode total` writes them whole again"))
        elif got.get("none"):
            status = "warn" if main else "ok"
            out.append(Check(check, status, "no catalog pushed there yet", f"`syscafe-sync catalogs push {name}`" if main else ""))
        elif bad := {c: v for c, v in got.items() if isinstance(v, str)}:
            out.append(Check(check, "fail", "its POS cannot read " + "; ".join(bad.values()),
                             f"`syscafe-sync catalogs push {name} --mode total` writes them whole again"))
        elif behind := [f"{c} (v{got.get(c, 0)} there, v{v} here)" if c in got else f"{c} (not there)"
                        for c, v in sorted(main.items()) if got.get(c) != v]:
            out.append(Check(check, "warn", "behind the main server: " + ", ".join(behind),
                             f"the service's next pass pushes them, or now: `syscafe-sync catalogs push {name}`"))
        else:
            out.append(Check(check, "ok", ", ".join(f"{c} v{v}" for c, v in sorted(got.items())) + ", as the main server has them"))
    return out


def _codes(rows: list[dict]) -> Check:
    """The registry gives a code to one caja only; the cajas' own caja.json files must not claim it twice either,
    or two POS number the same sequence and one caja's vouchers are refused as the other's."""
    owner = {code: r["name"] for r in rows for code in r["codes"]}
    claims: dict[str, list[str]] = {}
    for r in rows:
        for code in r["caja_json_codes"] or []:
            claims.setdefault(code, []).append(r["name"])
    clashes = [f"{code} in the caja.json of {' and '.join(names)}" + (f" (registered to {owner[code]})" if code in owner else "")
               for code, names in sorted(claims.items()) if len(names) > 1 or (code in owner and owner[code] != names[0])]
    if clashes:
        return Check("codes unique", "fail", "a code is claimed by more than one caja: " + "; ".join(clashes),
                     "each code belongs to one caja for ever: give the other POS its own code in its caja.json")
    return Check("codes unique", "ok", f"{len(owner)} codes, each with one caja")


def _catalogs() -> Check:
    counts = dict(CatalogRecord.select(CatalogRecord.catalog, fn.COUNT(CatalogRecord.id))
                  .where(CatalogRecord.deleted == False).group_by(CatalogRecord.catalog).tuples())  # noqa: E712
    loaded = {c for (c,) in Catalog.select(Catalog.name).tuples()}
    missing = [c for c in NEEDED_CATALOGS if c not in loaded or not counts.get(c)]
    if missing:
        return Check("catalogs loaded", "fail", f"not loaded or empty: {', '.join(missing)}",
                     "load each one: `syscafe-sync catalogs load NAME FILE`, then `syscafe-sync catalogs push`")
    return Check("catalogs loaded", "ok", ", ".join(f"{c} ({counts[c]})" for c in NEEDED_CATALOGS))


def _catalogs_cover(config: Config, now: dt.datetime) -> Check:
    """What a caja integration needs: every payment method, tax, seller and product the vouchers of the last
    COVER_DAYS days use is in the catalogs the cajas sell from, so reports and postings can name them."""
    since = (now.astimezone(config.timezone).date() - dt.timedelta(days=COVER_DAYS)).isoformat()
    recent = Voucher.day >= since
    used = {
        "payment_methods": {m for (m,) in VoucherPayment.select(VoucherPayment.method).join(Voucher).where(recent).distinct().tuples()},
        "sellers": {s for (s,) in Voucher.select(Voucher.seller).where(recent & Voucher.seller.is_null(False)).distinct().tuples()},
        "products": {p for (p,) in VoucherLine.select(VoucherLine.product).join(Voucher).where(recent & VoucherLine.product.is_null(False)).distinct().tuples()},
    }
    taxes_used = {(t, _rate(r)) for t, r in VoucherTax.select(VoucherTax.type, VoucherTax.rate).join(Voucher).where(recent).distinct().tuples()}
    unknown = {name: sorted(keys - set(catalogs.live(name))) for name, keys in used.items()}
    known_taxes = {(d.get("type"), _rate(d.get("rate"))) for d in map(json.loads, catalogs.live("taxes").values())}
    unknown["taxes"] = sorted(f"{t} {r} %" for t, r in taxes_used - known_taxes)
    gaps = {name: keys for name, keys in unknown.items() if keys}
    if gaps:
        text = "; ".join(f"{name}: {', '.join(keys[:10])}{' …' if len(keys) > 10 else ''}" for name, keys in gaps.items())
        return Check("catalogs cover the vouchers", "fail", f"used by vouchers of the last {COVER_DAYS} days but not in the catalogs: {text}",
                     "add them to the catalog files and load them again: `syscafe-sync catalogs load NAME FILE`")
    return Check("catalogs cover the vouchers", "ok", f"every payment method, tax, seller and product of the last {COVER_DAYS} days is in the catalogs")


def _rate(value) -> str | None:
    """A rate compared by value: "8", "8.0" and "8.00" are one rate."""
    try:
        return str(Decimal(str(value)).normalize()) if value is not None else None
    except InvalidOperation:
        return str(value)


def _resolutions(cajas: list[dict], today: dt.date) -> list[Check]:
    """Every code that issues invoices needs a DIAN resolution valid today with numbers left; one about to run
    out (days or numbers) needs a new one asked for now, since DIAN takes time to grant it."""
    kinds: dict[str, set[str]] = {}
    for code, kind in Voucher.select(Voucher.code, Voucher.kind).distinct().tuples():
        kinds.setdefault(code, set()).add(kind)
    with_any = {r["code"] for r in resolutions.listing()}
    out = []
    for code in sorted({code for c in cajas for code in c["codes"]}):
        if kinds.get(code) and kinds[code] <= NOTE_KINDS:
            continue  # adjustment and credit notes are numbered by the POS, not by a DIAN resolution
        current = _current(code, today)
        if current is None and not kinds.get(code) and code not in with_any:
            # nothing imported yet tells whether it numbers invoices (needs one) or notes (needs none)
            out.append(Check(f"{code} resolution", "warn", f"code {code} has no numbering resolution and no vouchers yet",
                             f"if {code} issues invoices, record its DIAN resolution: `syscafe-sync resolution add {code} …`"))
            continue
        if current is None:
            why = "has no numbering resolution" if code not in with_any else "has no resolution valid today with numbers left"
            out.append(Check(f"{code} resolution", "fail", f"code {code} {why}",
                             f"record the DIAN resolution: `syscafe-sync resolution add {code} --prefix P --from N --to N --valid-from D --valid-to D --number R`"))
            continue
        days_left = (dt.date.fromisoformat(current["valid_to"]) - today).days
        # A successor starting later takes over the days, not the numbers: it cannot be used before it starts.
        following = _successor(code, current, today) if days_left <= EXPIRY_DAYS else None
        if (days_left <= EXPIRY_DAYS and following is None) or current["used_percent"] > USED_PERCENT:
            out.append(Check(f"{code} resolution", "fail",
                             f"resolution {_name(current)} of {code} ends in {days_left} days and is {current['used_percent']} % used",
                             "ask DIAN for the next resolution now, then `syscafe-sync resolution add` it"))
        else:
            then = f"; then resolution {_name(following)} ({following['prefix']} {following['from']}–{following['to']}) from {following['valid_from']}" if following else ""
            out.append(Check(f"{code} resolution", "ok", f"{current['prefix']} {current['from']}–{current['to']} until {current['valid_to']}, "
                                                         f"{current['used_percent']} % used{then}"))
    return out


def _name(r: dict) -> str:
    return r["number"] or f"#{r['id']}"


def _successor(code: str, current: dict, today: dt.date) -> dict | None:
    """The resolution that takes over from `current`: numbers above its range, starting no later than the day
    after it ends (no day without a resolution), and not about to run out itself."""
    day_after = dt.date.fromisoformat(current["valid_to"]) + dt.timedelta(days=1)
    for r in resolutions.listing(code, today):
        if (r["from"] > current["to"] and dt.date.fromisoformat(r["valid_from"]) <= day_after
                and r["days_left"] > EXPIRY_DAYS and r["used_percent"] <= USED_PERCENT):
            return r
    return None


def _current(code: str, today: dt.date) -> dict | None:
    """The resolution of `code` in force today with numbers left, the latest granted first: by validity, not
    by number, since DIAN may grant a new range below the one it replaces (the POS moves to it at once)."""
    granted = sorted(resolutions.listing(code, today), key=lambda r: (r["valid_from"], r["from"]))
    for r in reversed(granted):
        in_force = dt.date.fromisoformat(r["valid_from"]) <= today <= dt.date.fromisoformat(r["valid_to"])
        if in_force and (r["highest_number"] is None or r["highest_number"] < r["to"]):
            return r
    return None


def _accounting() -> Check:
    from .accounting import mapping

    m = mapping.current()
    if m.empty:
        return Check("accounting mapping", "warn", "no accounting mapping is loaded: vouchers are not posted to accounting",
                     "write the mapping (docs/accounting.md) and load it: `syscafe-sync accounting map load FILE`")
    missing = mapping.uncovered(m)
    if missing:
        return Check("accounting mapping", "fail", "in use but not mapped: " + "; ".join(missing),
                     "add them to the mapping file, `syscafe-sync accounting map load FILE`, then `syscafe-sync accounting retry`")
    return Check("accounting mapping", "ok", f"{len(m.rows())} rows cover every payment method, tax, group and caja in use")


def _clock(now: dt.datetime, today: dt.date) -> Check:
    newest = SyncLog.select(fn.MAX(SyncLog.at)).scalar()
    if isinstance(newest, str):
        newest = dt.datetime.fromisoformat(newest)
    # The log is written by this machine's own clock, so a clock that was always behind never shows there;
    # the cajas' clocks do: their latest sales are then "in the future" here (and flagged so on import).
    recent = [(today + dt.timedelta(days=n)).isoformat() for n in (-1, 0, 1)]
    latest = (Voucher.select(Voucher.caja, Voucher.code, Voucher.number, Voucher.issued_utc)
              .where(Voucher.day.in_(recent)).order_by(Voucher.issued_utc.desc()).first())
    if now.year < 2024:
        return Check("clock sane", "fail", f"this machine says it is {now:%Y-%m-%d %H:%M} UTC",
                     "set the date and time (and enable NTP: timedatectl set-ntp true, or Windows time sync)")
    if newest and newest - now > CLOCK_SKEW:
        return Check("clock sane", "fail", f"the log has a row written at {newest:%Y-%m-%d %H:%M} UTC, after this machine's now ({now:%Y-%m-%d %H:%M} UTC): the clock went back",
                     "set the date and time (and enable NTP: timedatectl set-ntp true, or Windows time sync)")
    issued = latest and (dt.datetime.fromisoformat(latest.issued_utc) if isinstance(latest.issued_utc, str) else latest.issued_utc)
    if issued and issued - now > CLOCK_SKEW:
        return Check("clock sane", "fail", f"{latest.caja}'s voucher {latest.code}-{latest.number} was issued at {issued:%Y-%m-%d %H:%M} UTC, "
                     f"after this machine's now ({now:%Y-%m-%d %H:%M} UTC): this machine's clock is behind, or {latest.caja}'s is ahead",
                     "set the date and time of the one that is wrong (and enable NTP on both: timedatectl set-ntp true, or Windows time sync)")
    return Check("clock sane", "ok", f"{now:%Y-%m-%d %H:%M} UTC")


def _daemon(config: Config, now: dt.datetime) -> Check:
    status = health.daemon_status(now)
    failing = health.failing()
    text = health.describe_daemon(status)
    if failing:
        worst = ", ".join(f"{c} ({h.failures} passes: {h.reason})" for c, h in sorted(failing.items()))
        return Check("service", "fail", f"{text}; failing cajas: {worst}", "see `syscafe-sync log --level error` and fix each caja named")
    if not status["running"]:
        return Check("service", "warn", text, "start it: `systemctl start syscafe-sync` (Linux), `sc start syscafe-sync` (Windows), or `syscafe-sync daemon`")
    last = status["last_pass"]
    interval_s = status["interval_s"] or 60 * config.get("sync", "interval_minutes")
    late = dt.timedelta(seconds=3 * interval_s + 60)
    if last is None or now - dt.datetime.fromisoformat(last["at"]) > late:
        return Check("service", "fail", f"{text}; no pass for more than three intervals",
                     "a pass is stuck: see `syscafe-sync log --action daemon` and restart the service")
    return Check("service", "ok", text)
