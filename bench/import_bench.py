#!/usr/bin/env python
"""Voucher import benchmark: syscafe-sync against a hand-written floor, same files, same run.

Prints figures; asserts nothing about time. See bench/README.md.

    .venv/bin/python bench/import_bench.py [--cajas 10] [--vouchers 2000] [--memory-sizes 500,2000]

Every measured scenario runs in a fresh subprocess of this script (`--scenario NAME`),
so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY = dt.date(2026, 11, 22)
BOGOTA = dt.timezone(dt.timedelta(hours=-5))
MENU = [
    {"product": "ALM-EJ", "description": "Almuerzo ejecutivo", "quantity": "2", "unit_price": "16000.00",
     "discount": "0.00", "taxes": [{"type": "INC", "rate": "8"}]},
    {"product": "CAF-TIN", "description": "Tinto", "quantity": "3", "unit_price": "2500.00",
     "discount": "0.00", "taxes": [{"type": "INC", "rate": "8"}]},
    {"product": "GAS-400", "description": "Gaseosa 400 ml", "quantity": "1", "unit_price": "4000.00",
     "discount": "0.00", "taxes": [{"type": "IVA", "rate": "19"}]},
    {"product": "POS-DIA", "description": "Postre del día", "quantity": "1", "unit_price": "7500.00",
     "discount": "500.00", "taxes": [{"type": "INC", "rate": "8"}]},
    {"product": "CAF-500", "description": "Café 500 g", "quantity": "1", "unit_price": "20000.00",
     "discount": "0.00", "taxes": [{"type": "IVA", "rate": "5"}]},
]
MIB = 1024  # ru_maxrss is in KiB on Linux


# --- data --------------------------------------------------------------------------------------

def generate(data: Path, cajas: int, vouchers: int) -> float:
    """Writes the caja folders with the project's writer; reuses a complete earlier set."""
    from syscafe_sync.caja import CajaWriter, make_voucher

    marker = data / ".complete"
    if marker.exists() and marker.read_text() == f"{cajas}x{vouchers}":
        return 0.0
    shutil.rmtree(data, ignore_errors=True)
    started = time.perf_counter()
    for c in range(1, cajas + 1):
        name, fv, nc = f"CAJA{c:02d}", f"FV{c:02d}", f"NC{c:02d}"
        writer = CajaWriter(data / name)
        writer.write_caja_json(name, [fv, nc], "900123456-7")
        for i in range(vouchers):
            # 3, 4 or 5 lines (4 on average); every tenth voucher a credit note with its own numbering.
            lines = [MENU[(i + k) % len(MENU)] for k in range(3 + i % 3)]
            code, number, kind = (nc, i // 10 + 1, "credit_note") if i % 10 == 9 else (fv, i - i // 10 + 1, "pos_invoice")
            issued = dt.datetime.combine(DAY, dt.time(6), BOGOTA) + dt.timedelta(seconds=i * 57600 // vouchers)
            doc = make_voucher(name, code, number, issued, lines, None, kind=kind, prefix=f"POS{c:02d}")
            writer.write_voucher(doc, DAY)
    marker.write_text(f"{cajas}x{vouchers}")
    return time.perf_counter() - started


def caja_roots(data: Path) -> list[Path]:
    return sorted(p for p in data.iterdir() if p.is_dir())


def warm(data: Path) -> tuple[int, int]:
    """Reads every file once, so that the floor and the import both start from a warm page cache."""
    files = size = 0
    for folder, _, names in os.walk(data):
        for n in names:
            with open(os.path.join(folder, n), "rb") as f:
                size += len(f.read())
            files += 1
    return files, size


# --- the floor: a hand-written loader, no validation, no tracking -------------------------------

FLOOR_SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE voucher (id INTEGER PRIMARY KEY, caja TEXT, code TEXT, number INTEGER, day TEXT, kind TEXT,
    issued_at TEXT, status TEXT, customer_id TEXT, base TEXT, tax TEXT, tip TEXT, total TEXT, path TEXT, document TEXT);
CREATE UNIQUE INDEX voucher_code_number ON voucher (code, number);
CREATE INDEX voucher_caja ON voucher (caja);
CREATE INDEX voucher_caja_day ON voucher (caja, day);
CREATE INDEX voucher_day ON voucher (day);
CREATE TABLE line (voucher INTEGER, line_no INTEGER, product TEXT, description TEXT,
    quantity TEXT, unit_price TEXT, discount TEXT, base TEXT);
CREATE INDEX line_voucher ON line (voucher);
CREATE TABLE tax (voucher INTEGER, line_no INTEGER, type TEXT, rate TEXT, amount TEXT);
CREATE INDEX tax_voucher ON tax (voucher);
CREATE TABLE payment (voucher INTEGER, line_no INTEGER, method TEXT, amount TEXT);
CREATE INDEX payment_voucher ON payment (voucher);
"""


def run_floor(data: Path, db_path: Path) -> dict:
    con = sqlite3.connect(db_path, isolation_level=None)
    con.executescript(FLOOR_SCHEMA)
    day, vid, read = DAY.isoformat(), 0, 0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    for root in caja_roots(data):
        heads, lines, taxes, pays = [], [], [], []
        for entry in os.scandir(root / "movements" / day):
            name = entry.name
            if name.startswith(".") or not name.endswith(".json") or name == "closing.json":
                continue
            with open(entry.path, "rb") as f:
                raw = f.read()
            read += 1
            doc, vid = json.loads(raw), vid + 1
            t = doc["totals"]
            heads.append((vid, doc["caja"], doc["code"], doc["number"], day, doc.get("kind"), doc["issued_at"],
                          doc["status"], (doc.get("customer") or {}).get("id", "222222222222"), t.get("base"),
                          t.get("tax"), t.get("tip"), t["total"], f"movements/{day}/{name}", raw.decode("utf-8")))
            for i, ln in enumerate(doc["lines"]):
                lines.append((vid, i, ln.get("product"), ln.get("description"), ln.get("quantity"),
                              ln.get("unit_price"), ln.get("discount"), ln.get("base")))
                taxes += [(vid, i, tx["type"], tx.get("rate"), tx.get("amount")) for tx in ln.get("taxes") or ()]
            pays += [(vid, k, p["method"], p["amount"]) for k, p in enumerate(doc.get("payments") or ())]
        con.execute("BEGIN")
        con.executemany("INSERT INTO voucher VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", heads)
        con.executemany("INSERT INTO line VALUES (?,?,?,?,?,?,?,?)", lines)
        con.executemany("INSERT INTO tax VALUES (?,?,?,?,?)", taxes)
        con.executemany("INSERT INTO payment VALUES (?,?,?,?)", pays)
        con.execute("COMMIT")
    seconds = time.perf_counter() - started
    rows = con.execute("SELECT count(*) FROM voucher").fetchone()[0]
    con.close()
    return {"seconds": seconds, "imported": rows, "updated": 0, "skipped": 0, "refused": 0, "problems": [],
            "files_read": read, "rss_before": rss_before}


# --- syscafe-sync, through its core API -----------------------------------------------------------

def run_import(scenario: str, data: Path, home: Path, profile: bool) -> dict:
    from syscafe_sync import bounded, config as config_mod, importer, registry, setup
    from syscafe_sync.storage.local import LocalStorage

    cfg = config_mod.load(home, must_exist=False)
    setup.init(cfg)
    cfg = config_mod.load(home)
    if scenario == "fresh":
        for root in caja_roots(data):
            codes = json.loads((root / "caja.json").read_text(encoding="utf-8"))["codes"]
            registry.add(root.name, str(root), ip=None, codes=codes, timeout=5.0)
    # Counts the voucher files read (the re-run must read none); a thin wrapper, same for every scenario.
    # The import reads vouchers through read_many (a folder opened once); read serves the rest.
    reads, original_read, original_many = [0], LocalStorage.read, LocalStorage.read_many

    def counted_read(self, rel, limit=None):
        reads[0] += rel.startswith("movements/")
        return original_read(self, rel, limit)

    def counted_many(self, rels, limit=None):
        for rel, data in original_many(self, rels, limit):
            reads[0] += rel.startswith("movements/")
            yield rel, data

    LocalStorage.read, LocalStorage.read_many = counted_read, counted_many
    mode = "overwrite" if scenario == "overwrite" else "skip"
    profiler = None
    if profile:  # cProfile sees only its own thread: run each caja inline, not in bounded.call's worker
        import cProfile

        bounded.call = lambda fn, timeout, what="step", **_: fn()
        profiler = cProfile.Profile()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    call = profiler.runcall if profiler else (lambda fn, *a: fn(*a))
    result = call(importer.import_day, cfg, [], DAY, mode)
    seconds = time.perf_counter() - started
    if profiler:
        import pstats

        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    rs = result.results
    return {"seconds": seconds, "files_read": reads[0], "rss_before": rss_before,
            **{k: sum(getattr(r, k) for r in rs) for k in ("imported", "updated", "skipped", "refused")},
            "problems": [f"{r.caja}: {r.outcome}: {r.message}" for r in rs if r.outcome != "ok" or r.refused]}


def child(args) -> None:
    data, target = Path(args.data), Path(args.target)
    out = run_floor(data, target) if args.scenario == "floor" else run_import(args.scenario, data, target, args.profile)
    out["rss_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("RESULT " + json.dumps(out), flush=True)


# --- the parent: data, subprocesses, report -----------------------------------------------------

def remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def run_child(scenario: str, data: Path, target: Path, profile: bool = False) -> dict:
    if scenario in ("floor", "fresh"):  # a fresh database every time
        for p in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            remove(p)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--scenario", scenario,
           "--data", str(data), "--target", str(target)] + (["--profile"] if profile else [])
    return child_result(scenario, cmd)


def child_result(scenario: str, cmd: list[str]) -> dict:
    """Runs one scenario's subprocess and returns the JSON of its RESULT line."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"scenario {scenario} failed (exit {p.returncode}):\n{p.stdout}{p.stderr}")
    if p.stderr:
        print(p.stderr, end="")
    return json.loads(next(ln for ln in reversed(p.stdout.splitlines()) if ln.startswith("RESULT "))[7:])


def best(runs: list[dict]) -> dict:
    fastest = min(runs, key=lambda r: r["seconds"])
    return dict(fastest, rss_peak=max(r["rss_peak"] for r in runs))


def best_of(n: int, scenario: str, data: Path, target: Path) -> dict:
    return best([run_child(scenario, data, target) for _ in range(n)])


def floor_and_fresh(n: int, data: Path, floor_db: Path, home: Path) -> tuple[dict, dict, list[float]]:
    """The floor and the fresh import taken in turns, so that both see the machine as it is at
    the time: this machine's speed drifts by a third within minutes, and three floors followed by
    three imports compared the import with a floor timed at another speed. The ratio of each
    pair is returned too."""
    floors, freshes = [], []
    for _ in range(n):
        floors.append(run_child("floor", data, floor_db))
        freshes.append(run_child("fresh", data, home))  # the last fresh home is kept for the next two
    ratios = sorted(f["seconds"] / fl["seconds"] for fl, f in zip(floors, freshes))
    return best(floors), best(freshes), ratios


def expected(scenario: str, total: int) -> dict:
    return {"floor": {"imported": total}, "fresh": {"imported": total, "updated": 0, "skipped": 0},
            "rerun": {"imported": 0, "updated": 0, "skipped": total, "files_read": 0},
            "overwrite": {"imported": 0, "updated": 0, "skipped": total}}[scenario]


def table(headers: list[str], rows: list[list]) -> None:
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for i, r in enumerate(cells):
        print("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cajas", type=int, default=10)
    ap.add_argument("--vouchers", type=int, default=2000, help="vouchers per caja")
    ap.add_argument("--memory-sizes", default="500,2000", help="vouchers per caja for the peak-RSS runs")
    ap.add_argument("--repeat", type=int, default=1, help="runs per scenario; the fastest is shown")
    ap.add_argument("--workdir", help="where data and databases go (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the data and databases (reused with --workdir)")
    ap.add_argument("--profile", action="store_true", help="also profile one fresh import (cProfile, cumulative)")
    ap.add_argument("--scenario", choices=["floor", "fresh", "rerun", "overwrite"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--target", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scenario:
        return child(args)

    import peewee

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version}, peewee {peewee.__version__}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="syscafe-bench-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir: {work} (local disk)")
    made: set[Path] = set()
    sizes = sorted({int(s) for s in args.memory_sizes.split(",") if s.strip()})
    try:
        data, total = work / f"data-{args.cajas}x{args.vouchers}", args.cajas * args.vouchers
        made.add(data)
        took = generate(data, args.cajas, args.vouchers)
        print(f"data: {args.cajas} cajas x {args.vouchers} vouchers = {total} files for {DAY}, "
              + (f"written in {took:.1f} s (not timed below)" if took else "reused from an earlier --keep run"))
        files, size = warm(data)
        print(f"page cache: every file read once before timing ({files} files, {size / 2**20:.1f} MiB); "
              f"the floor and the fresh import run in turns. Each scenario: its own subprocess, best of {args.repeat}.\n")

        home, floor_db = work / "home", work / "floor.db"
        made |= {home, floor_db, work / "floor.db-wal", work / "floor.db-shm"}
        floor_r, fresh_r, ratios = floor_and_fresh(args.repeat, data, floor_db, home)
        res = {"floor": floor_r, "fresh": fresh_r,
               "rerun": best_of(args.repeat, "rerun", data, home),
               "overwrite": best_of(args.repeat, "overwrite", data, home)}
        floor_s = res["floor"]["seconds"]
        labels = {"floor": "1. floor (hand-written)", "fresh": "2. fresh import (skip)",
                  "rerun": "3. re-run, nothing new (skip)", "overwrite": "4. overwrite, nothing changed"}
        table(["scenario", "seconds", "vouchers/s", "x floor", "files read", "imported", "updated", "skipped",
               "peak RSS MiB"],
              [[labels[k], f"{r['seconds']:.3f}", f"{total / r['seconds']:,.0f}", f"{r['seconds'] / floor_s:.2f}",
                r["files_read"], r["imported"], r["updated"], r["skipped"], f"{r['rss_peak'] / MIB:.1f}"]
               for k, r in res.items()])
        print()
        for k, r in res.items():
            for field, want in expected(k, total).items():
                if r[field] != want:
                    print(f"WARNING: {labels[k]}: {field} = {r[field]}, expected {want}")
            for p in r["problems"][:5]:
                print(f"WARNING: {labels[k]}: {p}")
        fresh_x, rerun_x = res["fresh"]["seconds"] / floor_s, res["rerun"]["seconds"] / floor_s
        print(f"fresh / floor of each pair run in turn: {', '.join(f'{x:.2f}' for x in ratios)}")
        worst = ratios[-1]
        print(f"goal: fresh <= 2x floor   -> {fresh_x:.2f}x best of each, {worst:.2f}x the worst pair  "
              f"{'met' if max(fresh_x, worst) <= 2 else 'MISSED'}")
        print(f"goal: re-run <= 0.1x floor -> {rerun_x:.3f}x  {'met' if rerun_x <= 0.1 else 'MISSED'}")
        print(f"goal: re-run reads no voucher file -> {res['rerun']['files_read']} read  "
              f"{'met' if res['rerun']['files_read'] == 0 else 'MISSED'}")

        print(f"\npeak RSS of a fresh import by size ({args.cajas} cajas, fresh subprocess and home each):")
        mem = []
        for n in sizes:
            d = work / f"data-{args.cajas}x{n}"
            made |= {d, work / f"home-mem-{n}"}
            generate(d, args.cajas, n)
            warm(d)
            r = run_child("fresh", d, work / f"home-mem-{n}")
            if r["imported"] != args.cajas * n:
                print(f"WARNING: {n} per caja: imported {r['imported']}, expected {args.cajas * n}")
            mem.append([n, args.cajas * n, f"{r['seconds']:.2f}", f"{r['rss_before'] / MIB:.1f}",
                        f"{r['rss_peak'] / MIB:.1f}", f"{(r['rss_peak'] - r['rss_before']) / MIB:.1f}"])
        table(["vouchers/caja", "vouchers", "seconds", "RSS before MiB", "peak RSS MiB", "growth in run MiB"], mem)
        if len(mem) > 1:
            lo, hi = float(mem[0][4]), float(mem[-1][4])
            grew = (hi - lo) / lo
            print(f"goal: flat as vouchers grow -> {mem[-1][1] / mem[0][1]:.0f}x the vouchers, peak RSS "
                  f"{hi - lo:+.1f} MiB ({grew:+.0%})  {'met' if grew <= 0.10 else 'MISSED'} (tolerance +10 %)")
        if args.profile:
            print("\nprofile of one fresh import (cajas run inline, not in worker threads; times inflated):")
            run_child("fresh", data, work / "home-profile", profile=True)
            made.add(work / "home-profile")
    finally:
        if args.keep:
            print(f"\nkept: {work}")
        elif args.workdir:
            for p in made:
                remove(p)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
