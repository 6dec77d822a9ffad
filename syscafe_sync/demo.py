"""`syscafe-sync demo`: the bundled demo company, registered and imported in a throw-away home.

The caja folders are built by `demo_company` (the same bytes as `fixtures/`,
which a test guards), so the demo runs from an installed package with no data
files to find.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from . import config as config_mod
from . import audit, catalogs, demo_company, importer, loyalty, push, registry, resolutions, rules, setup
from .accounting import journal, mapping
from .db import redact
from .db.models import Caja
from .errors import UsageError


def run(home: str | None = None, db_url: str | None = None, keep: bool = True) -> dict:
    work = Path(tempfile.mkdtemp(prefix="syscafe-sync-demo-"))
    cajas_dir = work / "cajas"
    demo_company.build(cajas_dir)
    home_path = Path(home) if home else work / "home"
    cfg = config_mod.load(home_path, db_url, must_exist=False)
    setup.init(cfg)
    cfg = config_mod.load(home_path, db_url)
    taken = [n for n in demo_company.CAJAS if Caja.get_or_none(Caja.name == n)]
    if taken:
        shutil.rmtree(work, ignore_errors=True)
        raise UsageError(f"{home_path} already has cajas named {', '.join(taken)}; run the demo without --home, or with an empty home.")
    for name in demo_company.CAJAS:
        registry.add(name, str(cajas_dir / name), ip=None, codes=(), timeout=cfg.limits["connect_timeout_s"])
    for code, (prefix, first, last, valid_from, valid_to, number) in demo_company.RESOLUTIONS.items():
        resolutions.add(code, prefix, first, last, valid_from, valid_to, number, tz=cfg.timezone)
    days = []
    for day in demo_company.DAYS:
        result = importer.import_day(cfg, list(demo_company.CAJAS), day, "skip")
        days.append(result.as_dict())
    points = loyalty.sync(cfg, list(demo_company.CAJAS)).as_dict()
    held_rules = rules.sync(cfg, list(demo_company.CAJAS)).as_dict()
    loaded = []
    for name, (file_name, key, _) in demo_company.catalog_files().items():
        loaded.append(catalogs.load(name, cajas_dir / demo_company.CATALOGS_DIR / file_name, key))
    pushed = push.push(cfg, list(demo_company.CAJAS), "partial").as_dict()
    checked = audit.check()
    audited = []
    for day in demo_company.DAYS:
        result = audit.audit(day)
        audit.log_audit(result)
        audited.append(result)
    # The demo company's mapping, then every imported voucher posted to a CSV export in home.
    mapping.load(cajas_dir / demo_company.ACCOUNTING_FILE)
    posted = journal.post(cfg, to="csv").as_dict()
    report = {
        "action": "demo",
        "work": str(work),
        "cajas_root": str(cajas_dir),
        "home": str(home_path),
        "days": days,
        "loyalty": points,
        "rules": held_rules,
        "catalogs_loaded": [{k: c[k] for k in ("catalog", "version", "records")} for c in loaded],
        "catalogs_push": pushed,
        "check": checked,
        "audit": audited,
        "accounting": posted,
        "kept": keep,
        "db": redact(db_url) if db_url else None,
    }
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return report


def render(report: dict) -> str:
    out = ["syscafe-sync demo: Café La Esquina S.A.S., three cajas, two days", f"caja folders: {report['cajas_root']}", ""]
    header = f"{'date':<11} {'caja':<6} {'outcome':<8} {'imported':>8} {'skipped':>8} {'refused':>8}"
    out += [header, "-" * len(header)]
    refusals = []
    for day in report["days"]:
        for r in day["results"]:
            out.append(f"{day['date']:<11} {r['caja']:<6} {r['outcome']:<8} {r['imported']:>8} {r['skipped']:>8} {r['refused']:>8}")
            refusals += [f"  {r['caja']} {f['path']}: {f['reason']}" for f in r["refusals"]]
    if refusals:
        out += ["", "refused (quarantined, tried again on every pass):"] + refusals
    entries = sum(r["entries"] for r in report["loyalty"]["results"])
    out += ["", f"loyalty: {entries} ledger entries counted; balances shared with every caja as the loyalty_balances catalog"]
    out += [f"  finding: {f['message']}" for f in report["loyalty"]["findings"]]
    new_rules = sum(r["new"] for r in report["rules"]["results"])
    conflicts = sum(r["conflicts"] for r in report["rules"]["results"])
    out.append(f"commercial rules: {new_rules} held on the main server, {conflicts} conflicts")
    loaded = ", ".join(f"{c['catalog']} ({c['records']})" for c in report["catalogs_loaded"])
    out += ["", f"catalogs loaded on the main server: {loaded}", "catalogs pushed (first push: partial falls back to total):"]
    for r in report["catalogs_push"]["results"]:
        out.append(f"  {r['caja']}: {r['outcome']}, {r['upserts']} records, {r['bytes_written']} bytes, manifest committed")
    out += ["", "the day audit: each caja's closing.json beside what the main server holds"]
    for day in report["audit"]:
        for c in day["cajas"]:
            for code, e in c["codes"].items():
                out.append(f"  {day['date']} {c['caja']} {code}: {audit.describe(e)}")
    out += [f"finding: {f['caja']} {f['code']}-{f['number']}: {f['message']}" for f in report["check"]["findings"]]
    out += [f"gap: {g['caja']} {g['code']}: numbers missing {audit.runs(g['missing'])}" for g in report["check"]["gaps"]]
    acc = report["accounting"]
    entries = sum(1 for e in acc["entries"] if e["state"] == "delivered")
    out += ["", f"accounting: {len(acc['posted'])} vouchers posted as {entries} balanced journal entries "
                f"(the credit note reverses its sale; the voided voucher posts nothing), {len(acc['held'])} held",
            f"  CSV export: {acc['file']}"]
    out += [f"  held {x['voucher']}: {x['reason']}" for x in acc["held"]]
    h = f"--home {report['home']}" + (f" --db {report['db']}" if report.get("db") else "")
    if report["kept"]:
        out += [
            "",
            "look further:",
            f"  syscafe-sync {h} caja list",
            f"  syscafe-sync {h} vouchers list --caja CAJA2 --date 2026-11-21",
            f"  syscafe-sync {h} vouchers show FV2-1515",
            f"  syscafe-sync {h} vouchers refused",
            f"  syscafe-sync {h} vouchers check",
            f"  syscafe-sync {h} audit --date 2026-11-21",
            f"  syscafe-sync {h} resolution list",
            f"  syscafe-sync {h} doctor",
            f"  syscafe-sync {h} log --caja CAJA2",
            f"  syscafe-sync {h} catalogs show products",
            f"  syscafe-sync {h} loyalty show 1020304050",
            f"  syscafe-sync {h} rules list",
            f"  syscafe-sync {h} catalogs push --dry-run --mode replace",
            f"  syscafe-sync {h} import --date 2026-11-21 --mode overwrite",
            f"  syscafe-sync {h} accounting map show",
            f"  syscafe-sync {h} accounting post --per day --to json",
        ]
    return "\n".join(out)
