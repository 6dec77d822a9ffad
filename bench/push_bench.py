#!/usr/bin/env python
"""Catalog push benchmark: total, partial (10 changed records), nothing changed and replace pushes.

Prints figures; asserts nothing about time. See bench/README.md.

    .venv/bin/python bench/push_bench.py [--cajas 10] [--products 50000]

Every measured step runs in a fresh subprocess of this script (`--scenario NAME`),
so that its peak RSS is its own. The steps share one home and one set of caja
folders, in order: each push starts from what the previous one left.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import lan  # noqa: E402  same folder
import push_floor  # noqa: E402  same folder
import pgtest  # noqa: E402  the tests' throw-away PostgreSQL databases
from import_bench import child_result, table  # noqa: E402  same folder: what both benchmarks share
from samba import PASSWORD, SambaServer, unavailable  # noqa: E402  the tests' throw-away Samba server

from syscafe_sync.storage.local import filesystem_type  # noqa: E402

CATALOG = "products"
CHANGED = 10  # products whose price changes before the partial push
GOAL_PARTIAL_BYTES = 64 * 1024  # per caja
GOAL_PARTIAL_SHARE = 0.05  # of the total push's time
GROUPS = ["BEB", "CAF", "ALM", "POS", "PAN", "SNK", "LAC", "ASE"]
TAXES = [("INC", "8"), ("IVA", "19"), ("IVA", "5"), ("IVA", "0")]
UNITS = ["und", "kg", "lt", "porción"]
MIB = 1024  # ru_maxrss is in KiB on Linux
# With --smb, the children register each caja as <this URL>/<CAJAnn> (the share holds the caja folders).
ROOT_URL_ENV = "PUSH_BENCH_ROOT_URL"


# --- data --------------------------------------------------------------------------------------

def write_cajas(cajas_dir: Path, cajas: int) -> None:
    """Empty caja folders, each with its caja.json, written with the project's writer."""
    from syscafe_sync.caja import CajaWriter

    # Emptied, not removed: with --smb the folder is the share itself.
    cajas_dir.mkdir(parents=True, exist_ok=True)
    for child in cajas_dir.iterdir():
        shutil.rmtree(child)
    for c in range(1, cajas + 1):
        name = f"CAJA{c:02d}"
        CajaWriter(cajas_dir / name).write_caja_json(name, [f"FV{c:02d}"], "900123456-7")


def changed_products(products: int, round_no: int) -> set[int]:
    """Which products get a new price in round `round_no` (1: the partial push, 2: the total push again,
    3: the profile): spread out."""
    return {min(products - 1, k * products // CHANGED + round_no - 1) for k in range(CHANGED)}


def write_products(path: Path, products: int, bumped: set[int]) -> None:
    """The products catalog as CSV; every value a string, price a decimal string. `bumped` get a new price."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["code", "description", "group", "price", "tax_type", "tax_rate", "unit"])
        for i in range(products):
            tax_type, tax_rate = TAXES[i % len(TAXES)]
            cents = 50_000 + (i * 7_919) % 9_950_000 + (100_000 if i in bumped else 0)
            w.writerow([f"P{i:06d}", f"Producto {i:06d} presentación {i % 7 + 1}", GROUPS[i % len(GROUPS)],
                        f"{cents // 100}.{cents % 100:02d}", tax_type, tax_rate, UNITS[i % len(UNITS)]])


def caja_roots(cajas_dir: Path) -> list[Path]:
    return sorted(p for p in cajas_dir.iterdir() if p.is_dir())


def folder_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """name -> (size, inode, mtime_ns) of every file in the caja's catalogs/ folder."""
    out = {}
    try:
        with os.scandir(root / "catalogs") as it:
            for e in it:
                if e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    out[e.name] = (st.st_size, st.st_ino, st.st_mtime_ns)
    except FileNotFoundError:
        pass
    return out


def measured_writes(before: dict, after: dict) -> tuple[int, int, list[str]]:
    """(bytes written, growth of the folder, what happened to each file), from the files alone.

    A new file or one replaced by rename (new inode) counts whole; a file kept under its inode
    counts what it grew by (the journal: cut back to `journal_bytes`, then appended to).
    """
    written, notes = 0, []
    for name in sorted(after):
        size, ino, mtime = after[name]
        old = before.get(name)
        if old is None:
            written += size
            notes.append(f"{name} {size:,} B (new)")
        elif old[1] != ino:
            written += size
            notes.append(f"{name} {size:,} B (rewritten, was {old[0]:,} B)")
        elif (old[0], old[2]) != (size, mtime):
            written += max(0, size - old[0])
            notes.append(f"{name} +{size - old[0]:,} B (appended, now {size:,} B)")
    notes += [f"{name} -{before[name][0]:,} B (removed)" for name in sorted(set(before) - set(after))]
    growth = sum(s for s, _, _ in after.values()) - sum(s for s, _, _ in before.values())
    return written, growth, notes


def flush_floor(work: Path, cajas: int, rounds: int = 5) -> tuple[float, float]:
    """What the disk alone takes for a partial push's writes at every caja, with nothing else running:
    a journal append, a manifest written by temporary name and rename, each flushed as the push flushes
    them (the file, the file, the folder). Best of `rounds`, one caja after the other and all at once."""
    from concurrent.futures import ThreadPoolExecutor

    from syscafe_sync.caja.writer import fsync_dir

    base = work / f"syscafe-push-bench-flush-floor-{os.getpid()}"
    folders = [base / f"c{i}" for i in range(cajas)]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)

    def flushed(path: Path, flags: int, size: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags)
        try:
            os.write(fd, b"x" * size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def one(folder: Path) -> None:
        flushed(folder / "journal", os.O_APPEND, 1909)
        flushed(folder / "manifest.tmp", os.O_TRUNC, 415)
        os.replace(folder / "manifest.tmp", folder / "manifest.json")
        fsync_dir(str(folder))

    def best(run) -> float:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times)

    try:
        serial = best(lambda: [one(f) for f in folders])
        with ThreadPoolExecutor(max_workers=cajas) as pool:
            together = best(lambda: list(pool.map(one, folders)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return serial, together


def same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def process_wchar() -> int | None:
    """Bytes this process handed to write() so far (Linux), database and log included."""
    try:
        with open("/proc/self/io") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("wchar:"))
    except (OSError, StopIteration, ValueError):
        return None


# --- the child: one step, through the core API -------------------------------------------------

def open_home(home: Path):
    from syscafe_sync import config as config_mod, setup

    cfg = config_mod.load(home, must_exist=False)
    setup.init(cfg)
    return config_mod.load(home)


def run_setup(cajas_dir: Path, home: Path, csv_path: Path) -> dict:
    """A fresh home, the cajas registered, the first load of the catalog; not a measured push."""
    from syscafe_sync import catalogs, registry

    cfg = open_home(home)
    url = os.environ.get(ROOT_URL_ENV)
    for root in caja_roots(cajas_dir):
        codes = json.loads((root / "caja.json").read_text(encoding="utf-8"))["codes"]
        registry.add(root.name, f"{url}/{root.name}" if url else str(root), ip=None, codes=codes, timeout=5.0, config=cfg)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    loaded = catalogs.load(CATALOG, csv_path)
    return {"seconds": time.perf_counter() - started, "rss_before": rss_before, "load": loaded}


def run_load(home: Path, csv_path: Path, opened: bool = False) -> dict:
    from syscafe_sync import catalogs

    if not opened:
        open_home(home)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    loaded = catalogs.load(CATALOG, csv_path)
    return {"seconds": time.perf_counter() - started, "rss_before": rss_before, "load": loaded}


class _Inline:
    """bounded.Pending's stand-in for --without threads and --profile: the step has run when it is made."""

    def __init__(self, fn, what: str = "step"):
        self.result, self.error = None, None
        try:
            self.result = fn()
        except BaseException as exc:  # handed to wait(), as bounded does
            self.error = exc

    def wait(self, *args, **kwargs):
        if self.error is not None:
            raise self.error
        return self.result


def take_out(without: set[str]) -> None:
    """What-if runs, which the product never does: without threads, every caja and every one of its
    steps runs in this thread, one after the other (no pool, no worker with a deadline); without flushes,
    os.fsync does nothing (the caja files' and folders' flushes; SQLite flushes in C, untouched)."""
    from syscafe_sync import bounded, push

    if "threads" in without:
        bounded.start = _Inline
        bounded.call = lambda fn, timeout, what="step", **_: fn()
        push.in_pool = lambda workers, fn, items: [fn(item) for item in items]
    if "flushes" in without:
        os.fsync = lambda fd: None


def run_push(mode: str, cajas_dir: Path, home: Path, profile: bool, workers: int | None, cfg=None,
             floor: bool = False) -> dict:
    """`floor`: right after the push, time push_floor.py's hand-written partial push of the same changes on
    copies of the cajas' catalogs as they were before it (local folders only)."""
    from syscafe_sync import catalogs, push

    cfg = cfg or open_home(home)
    if workers:
        cfg.limits["workers"] = workers  # as if set in config.toml
    roots = {p.name: p for p in caja_roots(cajas_dir)}
    profiler = None
    if profile:  # cProfile sees only its own thread: every caja inline, not in the pool's or a bounded worker's
        import cProfile

        take_out({"threads"})
        profiler = cProfile.Profile()
    before = {name: folder_state(root) for name, root in roots.items()}
    floor = floor and not os.environ.get(ROOT_URL_ENV)
    if floor:
        floor_work = home.parent / "floor"
        floor_folders = push_floor.prepare(list(roots.values()), floor_work)
        since = json.loads((floor_folders[0] / "manifest.json").read_text())["catalogs"][CATALOG]["version"]
    wchar_before = process_wchar()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    call = profiler.runcall if profiler else (lambda fn, *a: fn(*a))
    result = call(push.push, cfg, [], mode)
    seconds = time.perf_counter() - started
    wchar_after = process_wchar()
    floor_seconds = None
    if floor:
        changes = catalogs.changes_since(CATALOG, since)
        lines = "".join(f'{{"version": {v}, "op": "upsert", "record": {data}}}\n' for v, _, deleted, data in changes
                        if not deleted).encode("utf-8")
        cat = catalogs.get(CATALOG)
        floor_seconds = push_floor.push(floor_folders, floor_work, CATALOG, lines, cat.version, cat.sha256)
        from syscafe_sync.caja.catalog import read_catalog

        # The floor is only a floor if what it leaves reads back as the catalog: checked at one copy, not timed.
        if read_catalog(floor_folders[0].parent, CATALOG).sha256 != cat.sha256:
            floor_seconds = None
        shutil.rmtree(floor_work, ignore_errors=True)
    if profiler:
        import pstats

        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(15)
    cajas = []
    for r in result.results:
        written, growth, notes = measured_writes(before.get(r.caja, {}), folder_state(roots[r.caja]))
        cajas.append({"caja": r.caja, "outcome": r.outcome, "message": r.message, "bytes_written": r.bytes_written,
                      "duration_s": r.duration_s, "measured": written, "growth": growth, "files": notes,
                      "catalogs": [(c.catalog, c.mode, c.upserts, c.deletes, c.fallback) for c in r.catalogs]})
    return {"seconds": seconds, "rss_before": rss_before, "cajas": cajas, "version": catalogs.get(CATALOG).version,
            "wchar": None if wchar_before is None or wchar_after is None else wchar_after - wchar_before,
            "floor_seconds": floor_seconds}


def run_read(cajas_dir: Path) -> dict:
    """The POS side: one caja reads its catalog with the standard-library reader."""
    from syscafe_sync.caja.catalog import read_catalog

    root = caja_roots(cajas_dir)[0]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    view = read_catalog(root, CATALOG)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_before": rss_before, "caja": root.name, "records": len(view.records),
            "version": view.version, "bytes": sum(s for s, _, _ in folder_state(root).values())}


def run_sequence(cajas_dir: Path, home: Path, csv_path: Path, products: int, workers: int | None) -> dict:
    """Every step of a round in this one process, as a running service would push pass after pass:
    its connections, threads and compiled statements already there for every push but the first."""
    cfg = open_home(home)  # once: opening it again would start from new connections
    steps = {}
    for step, bumped in STEPS:
        if bumped is not None:
            write_products(csv_path, products, bumped(products))  # not timed, as between two passes
        if step in ("load", "load-again"):
            steps[step] = run_load(home, csv_path, opened=True)
        elif step == "read":
            steps[step] = run_read(cajas_dir)
        else:
            steps[step] = run_push(push_mode(step), cajas_dir, home, False, workers, cfg, floor=step == "partial")
        steps[step]["rss_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the process's so far
    return {"steps": steps}


def push_mode(step: str) -> str:
    return {"unchanged": "partial", "total-again": "total"}.get(step, step)


def child(args) -> None:
    cajas_dir, home = Path(args.data), Path(args.target)
    take_out(set(args.without))
    if args.scenario == "sequence":
        out = run_sequence(cajas_dir, home, Path(args.csv), args.products, args.workers)
    elif args.scenario == "setup":
        out = run_setup(cajas_dir, home, Path(args.csv))
    elif args.scenario == "load":
        out = run_load(home, Path(args.csv))
    elif args.scenario == "read":
        out = run_read(cajas_dir)
    elif args.scenario == "load-again":
        out = run_load(home, Path(args.csv))
    else:
        out = run_push(push_mode(args.scenario), cajas_dir, home, args.profile, args.workers,
                       floor=args.scenario == "partial" and not args.profile)
    out["rss_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("RESULT " + json.dumps(out), flush=True)


# --- the parent: data, subprocesses, report -----------------------------------------------------

def run_child(scenario: str, cajas_dir: Path, home: Path, csv_path: Path, profile: bool = False,
              workers: int | None = None, products: int | None = None, without: list[str] = ()) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--scenario", scenario,
           "--data", str(cajas_dir), "--target", str(home), "--csv", str(csv_path)] + (["--profile"] if profile else [])
    cmd += ["--workers", str(workers)] if workers else []
    cmd += ["--without", ",".join(without)] if without else []
    cmd += ["--products", str(products)] if products else []
    return child_result(scenario, cmd)


def span(values: list[int]) -> str:
    """min..max of a per-caja figure, in bytes; one value when they agree."""
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,}..{hi:,}"


def expected(scenario: str) -> dict:
    """What each caja's products outcome must be: (mode, upserts, deletes, fallback); None = any count."""
    return {"total": ("total", None, 0, None), "partial": ("partial", CHANGED, 0, None),
            "unchanged": ("unchanged", 0, 0, None), "total-again": ("total", None, 0, None),
            "replace": ("replace", None, 0, None)}[scenario]


def check(label: str, scenario: str, r: dict, products: int) -> None:
    mode, upserts, deletes, fallback = expected(scenario)
    upserts = products if upserts is None else upserts
    for c in r["cajas"]:
        if c["outcome"] != "ok":
            print(f"WARNING: {label}: {c['caja']}: {c['outcome']}: {c['message']}")
            continue
        got = [x for x in c["catalogs"] if x[0] == CATALOG]
        if not got or tuple(got[0][1:]) != (mode, upserts, deletes, fallback):
            print(f"WARNING: {label}: {c['caja']}: {CATALOG} (mode, upserts, deletes, fallback) = "
                  f"{tuple(got[0][1:]) if got else None}, expected {(mode, upserts, deletes, fallback)}")
        if c["measured"] != c["bytes_written"]:
            print(f"WARNING: {label}: {c['caja']}: bytes_written {c['bytes_written']:,} but the files show "
                  f"{c['measured']:,} B written")
        if scenario == "unchanged" and (c["bytes_written"] or c["measured"] or c["growth"]):
            print(f"WARNING: {label}: {c['caja']}: wrote {c['measured']:,} B, expected nothing")


# The steps of a round, in order, each with the prices the CSV gets before it (None: left as it is).
STEPS = [
    ("total", None),
    ("load", lambda n: changed_products(n, 1)),
    ("partial", None),
    ("read", None),
    ("unchanged", None),
    ("load-again", lambda n: changed_products(n, 1) | changed_products(n, 2)),  # 10 more prices change
    ("total-again", None),
    ("replace", None),
]


def one_round(args, cajas_dir: Path, home: Path, csv_path: Path, runs: dict[str, list[dict]], pg=None) -> dict:
    """Fresh home and cajas, then every step in order; each step's result appended to runs[step].
    `pg` (a pgtest.Server): the home's database is a new, empty PostgreSQL database, named in the
    children's SYSCAFE_SYNC_DB, as a service on PostgreSQL gets it; the last round's is dropped by main."""
    shutil.rmtree(home, ignore_errors=True)
    if pg is not None:
        if os.environ.get("SYSCAFE_SYNC_DB"):
            pg.drop(urlparse(os.environ["SYSCAFE_SYNC_DB"]).path.lstrip("/"))
        os.environ["SYSCAFE_SYNC_DB"] = pg.url(pg.create())
    write_cajas(cajas_dir, args.cajas)
    write_products(csv_path, args.products, set())
    setup = run_child("setup", cajas_dir, home, csv_path)
    if args.warm:
        steps = run_child("sequence", cajas_dir, home, csv_path, workers=args.workers, products=args.products,
                          without=args.without)["steps"]
        for step, r in steps.items():
            runs.setdefault(step, []).append(r)
        return setup
    for step, bumped in STEPS:
        if bumped is not None:
            write_products(csv_path, args.products, bumped(args.products))
        runs.setdefault(step, []).append(run_child(step, cajas_dir, home, csv_path, workers=args.workers,
                                                   without=args.without))
    return setup


WITHOUT = ("flushes", "threads")


def what_if(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in WITHOUT]
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown)}: --without takes flushes, threads or both (comma-separated)")
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cajas", type=int, default=10)
    ap.add_argument("--products", type=int, default=50_000, help="records in the products catalog")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds, each from a fresh home; the fastest of each step is shown")
    ap.add_argument("--workdir", help="where the cajas, the home and the CSV go (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the cajas, the home and the CSV afterwards")
    ap.add_argument("--profile", nargs="?", const="partial", choices=["partial", "total"],
                    help="also profile one more push (default partial: 10 more prices changed; cProfile)")
    ap.add_argument("--smb", action="store_true",
                    help="reach the cajas through smb:// on a loopback Samba server (needs Debian's samba and root)")
    ap.add_argument("--lan", metavar="RATE",
                    help="with --smb: smbd in its own network namespace, reached through a link capped at RATE (tc's "
                         "spelling: 100mbit, 1gbit) as a café's LAN is; needs root and iproute2 (bench/lan.py)")
    ap.add_argument("--workers", type=int, help="cajas pushed at once (limits.workers; default: the configuration's, 4)")
    ap.add_argument("--warm", action="store_true",
                    help="every step of a round in one process, as a running service pushes (default: one process each)")
    ap.add_argument("--cajas-dir", metavar="DIR",
                    help="put the caja folders under DIR, on another file system than the home (the cajas are other "
                         "machines: their flushes do not wait for the main server's database); default: in the workdir")
    ap.add_argument("--pg", action="store_true",
                    help="the main database on PostgreSQL (a new database each round, on the tests' server: 127.0.0.1:5432 "
                         "with trust auth, or SYSCAFE_SYNC_TEST_DB=postgresql://USER@HOST:PORT/DB) instead of SQLite in the home")
    ap.add_argument("--without", type=what_if, default=[], metavar="flushes,threads",
                    help="what-if runs the product never does: take out the caja files' flushes (os.fsync) and/or "
                         "the threads (every caja and step inline, one after the other), to see what the rest costs")
    ap.add_argument("--scenario", choices=["setup", "sequence"] + [step for step, _ in STEPS], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--target", help=argparse.SUPPRESS)
    ap.add_argument("--csv", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scenario:
        return child(args)
    if args.cajas < 1 or args.products < CHANGED or args.repeat < 1:
        ap.error(f"--cajas and --repeat must be at least 1, --products at least {CHANGED}")
    if args.lan:
        try:
            lan.parse_rate(args.lan)
        except ValueError as exc:
            ap.error(f"--lan: {exc}")
        if not args.smb:
            ap.error("--lan needs --smb: the link leads to the Samba server's namespace")
    if args.cajas_dir and args.smb:
        ap.error("--cajas-dir and --smb: with --smb the cajas are the Samba share's folders")
    if args.cajas_dir and not Path(args.cajas_dir).is_dir():
        ap.error(f"--cajas-dir {args.cajas_dir}: there is no such folder; give an existing one (on the file system "
                 "to measure)")

    import peewee

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version}, peewee {peewee.__version__}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="syscafe-push-bench-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    cajas_dir, home, csv_path = work / "cajas", work / "home", work / f"{CATALOG}.csv"
    if args.cajas_dir:
        cajas_dir = Path(args.cajas_dir).absolute() / f"syscafe-push-bench-cajas-{os.getpid()}"
    made = {cajas_dir, home, csv_path}
    server = link = None
    if args.smb:
        why = unavailable() or (args.lan and lan.unavailable())
        if why:
            sys.exit(f"push_bench --smb{' --lan' if args.lan else ''} needs a Samba server{' in a namespace' if args.lan else ''}: {why}")
        where = "smbd on loopback"
        try:
            if args.lan:
                link = lan.Lan(args.lan).__enter__()
                carried = link.measure(16 if link.bits < 5e8 else 64)
                where = (f"smbd in network namespace {link.ns}, behind a link capped at {args.lan} that carried "
                         f"{carried / 1e6:.0f} Mbit/s one way (one TCP stream; no added latency)")
            server = SambaServer(work / "samba", shares=("cajas",), address=link.address if link else "127.0.0.1",
                                 prefix=link.prefix if link else ()).start()
        except BaseException:
            if link:
                link.__exit__(None, None, None)
            raise
        cajas_dir = server.shares["cajas"]
        made.add(work / "samba")
        os.environ[ROOT_URL_ENV] = server.url("cajas")
        os.environ["SYSCAFE_SYNC_SMB_PASSWORD"] = PASSWORD  # as a service would get it: the environment
        print(f"workdir: {work}; cajas reached as {server.url('cajas')}/CAJAnn ({where}), home on local disk")
    else:
        if args.cajas_dir:
            print(f"workdir: {work} (the home: {filesystem_type(str(work)) or 'file system not known'}); cajas in {cajas_dir} "
                  f"({filesystem_type(str(cajas_dir.parent)) or 'file system not known'}), "
                  f"{'the same' if same_fs(cajas_dir.parent, work) else 'another'} file system")
        else:
            print(f"workdir: {work} (local disk; cajas and home on the same disk and file system)")
    pg = None
    if args.pg:
        pg = pgtest.Server()
        if pg.conn is None:
            sys.exit(f"push_bench --pg needs a PostgreSQL server: {pg.why}")
        p = pg.params
        print(f"database: PostgreSQL at {p['host']}:{p['port']} (user {p['user']}), a new database each round")
    else:
        print("database: SQLite in the home (WAL)")
    if args.without:
        print(f"WHAT-IF run, without {' and '.join(args.without)}: the product never runs this way; the figures show "
              "what the rest costs, and say nothing of the goals")
    try:
        runs: dict[str, list[dict]] = {}
        for round_no in range(1, args.repeat + 1):
            setup = one_round(args, cajas_dir, home, csv_path, runs, pg)
            if round_no == 1:
                print(f"data: {args.cajas} empty cajas, {CATALOG}.csv with {args.products:,} records "
                      f"({csv_path.stat().st_size / 2**20:.1f} MiB); written again for every round (not timed)")
                print(f"setup (not timed): fresh home, {args.cajas} cajas registered, first catalogs.load "
                      f"{setup['load']['upserts']:,} records -> version {setup['load']['version']} in "
                      f"{setup['seconds']:.2f} s (peak RSS {setup['rss_peak'] / MIB:.1f} MiB)")
        where = ("all of them in one process, one after the other, as a running service pushes (peak RSS: the "
                 "process's so far)" if args.warm else "each in its own subprocess")
        print(f"Each step below: {where}, in this order, on the same home and cajas; seconds = "
              f"time.perf_counter around push.push (or the load / read) only; best of {args.repeat} "
              f"round{'s' if args.repeat > 1 else ''}, each from a fresh home and fresh cajas.\n")
        res = {k: dict(min(rs, key=lambda r: r["seconds"]), rss_peak=max(r["rss_peak"] for r in rs))
               for k, rs in runs.items()}

        labels = {"total": "1. total push (first push)",
                  "load": f"2a. catalogs.load, {CHANGED} prices changed",
                  "partial": f"2b. partial push ({CHANGED} changed)",
                  "read": "2c. read_catalog at one caja (POS)",
                  "unchanged": "3. partial push, nothing changed",
                  "load-again": f"4a. catalogs.load, {CHANGED} more prices changed",
                  "total-again": "4b. total push (cajas hold the catalog)",
                  "replace": "5. replace push"}
        rows = []
        for k, r in res.items():
            if "cajas" in r:
                cs = r["cajas"]
                modes = sorted({x[1] for c in cs for x in c["catalogs"]}) or [c["outcome"] for c in cs][:1]
                rows.append([labels[k], f"{r['seconds']:.3f}", f"{r['seconds'] / len(cs):.3f}", "/".join(modes),
                             span([c["bytes_written"] for c in cs]), span([c["measured"] for c in cs]),
                             span([c["growth"] for c in cs]), f"{r['rss_peak'] / MIB:.1f}"])
            elif k in ("load", "load-again"):
                ld = r["load"]
                done = f"+{ld['upserts']} -{ld['deletes']} v{ld['version']}"
                rows.append([labels[k], f"{r['seconds']:.3f}", "", done, "", "", "", f"{r['rss_peak'] / MIB:.1f}"])
            else:
                rows.append([labels[k], f"{r['seconds']:.3f}", "", f"{r['records']:,} records v{r['version']}",
                             "", "", "", f"{r['rss_peak'] / MIB:.1f}"])
        table(["scenario", "seconds", "s/caja", "done", "bytes/caja (result)", "bytes/caja (files)",
               "folder growth/caja", "peak RSS MiB"], rows)
        print("bytes/caja: min..max over the cajas. (result) = bytes_written of the push; (files) = measured from "
              "the catalogs/ folder (new or renamed-over files whole, the journal by its growth).")
        print()

        for k in ("total", "partial", "unchanged", "total-again", "replace"):
            check(labels[k], k, res[k], args.products)
        read = res["read"]
        if read["records"] != args.products or read["version"] != res["partial"]["version"]:
            print(f"WARNING: {labels['read']}: {read['records']} records at version {read['version']}, expected "
                  f"{args.products} at version {res['partial']['version']}")
        first = res["partial"]["cajas"][0]
        print(f"partial push at {first['caja']}: " + "; ".join(first["files"]))
        per_caja = ", ".join(f"{c['caja']} {c['duration_s']:.3f}" for c in res["partial"]["cajas"])
        print(f"partial push, duration_s per caja: {per_caja}")
        print(f"read_catalog at {read['caja']}: {read['records']:,} records, version {read['version']}, "
              f"{read['bytes']:,} B in its catalogs/ folder")
        for k in ("total", "partial", "unchanged", "total-again", "replace"):
            w = res[k]["wchar"]
            if w is not None:
                print(f"{labels[k]}: the process wrote {w:,} B in all (write() calls: cajas, database, log)")
        print()

        partial = res["partial"]
        worst = max(max(c["bytes_written"], c["measured"]) for c in partial["cajas"])
        print(f"goal: {CHANGED}-record partial push writes <= {GOAL_PARTIAL_BYTES // 1024} KiB per caja -> at most "
              f"{worst:,} B ({worst / 1024:.1f} KiB) at a caja  {'met' if worst <= GOAL_PARTIAL_BYTES else 'MISSED'}")
        # Two total pushes to compare with: the one a partial push saves (the same cajas, holding the catalog,
        # get the change by a total push, which reads each caja's records to keep the ones only it has), and
        # the first push to empty cajas (where a partial push is a total one), which reads nothing back.
        if not args.smb:
            serial, together = flush_floor(cajas_dir.parent, args.cajas)
            print(f"the disk alone, for a partial push's three flushes at each of the {args.cajas} cajas (nothing else "
                  f"running): {serial * 1000:.1f} ms one caja after the other, {together * 1000:.1f} ms all at once")
        for k, what in (("total-again", "the total push it saves (4b: cajas hold the catalog)"),
                        ("total", "the first total push to empty cajas (1)")):
            share = partial["seconds"] / res[k]["seconds"]
            verdict = f"(what-if, without {' and '.join(args.without)})" if args.without else (
                "met" if share <= GOAL_PARTIAL_SHARE else "MISSED")
            print(f"goal: partial push <= {GOAL_PARTIAL_SHARE:.0%} of {what} -> {partial['seconds']:.3f} s / "
                  f"{res[k]['seconds']:.3f} s = {share:.1%}  {verdict}")
        floors = [(r["seconds"], r["floor_seconds"]) for r in runs["partial"] if r.get("floor_seconds") is not None]
        if not args.smb and len(floors) < len(runs["partial"]):
            print("WARNING: the floor's push did not read back as the main server's catalog in "
                  f"{len(runs['partial']) - len(floors)} round(s): left out")
        if floors:
            best = min(f for _, f in floors)
            pairs = ", ".join(f"{p / f:.2f}" for p, f in floors)
            print(f"floor: the same {CHANGED} changes pushed by SPEC's commit protocol written by hand (push_floor.py: "
                  f"one caja after the other, plain sqlite3, no threads, no deadlines), timed right after each partial "
                  f"push on copies of its cajas: best {best:.3f} s = {best / res['total-again']['seconds']:.1%} of the "
                  f"total push it saves (4b), {best / res['total']['seconds']:.1%} of the first (1); partial push ÷ "
                  f"floor, each round: {pairs}")

        if args.profile:
            # Not profiled: a push that deletes the files the replace push left behind, so the profiled
            # push starts as scenario 2b did (a push deletes what the previous push replaced).
            run_child("unchanged", cajas_dir, home, csv_path)
            if args.profile == "partial":
                bumped = set().union(*(changed_products(args.products, r) for r in (1, 2, 3)))
                write_products(csv_path, args.products, bumped)  # the earlier rounds' prices stay: 10 new changes
                run_child("load", cajas_dir, home, csv_path)
            print(f"\nprofile of one more {args.profile} push (cajas run inline, not in worker threads; "
                  "times inflated):")
            r = run_child(args.profile, cajas_dir, home, csv_path, profile=True)
            print(f"profiled {args.profile} push: {r['seconds']:.3f} s")
    finally:
        if pg is not None:
            if os.environ.get("SYSCAFE_SYNC_DB"):
                pg.drop(urlparse(os.environ.pop("SYSCAFE_SYNC_DB")).path.lstrip("/"))
            pg.conn.close()
        if server:
            server.stop()
        if link:
            link.__exit__(None, None, None)
        if args.keep:
            print(f"\nkept: {work}")
        elif args.workdir:
            for p in made:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
        if args.cajas_dir and not args.keep:
            shutil.rmtree(cajas_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
