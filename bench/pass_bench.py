#!/usr/bin/env python
"""Full-pass benchmark on PostgreSQL: 30 cajas served by 1 daemon, then by 3 shared daemons.

Prints figures; asserts nothing about time. See bench/README.md.

    .venv/bin/python bench/pass_bench.py [--cajas 30] [--vouchers 200] [--pg postgresql://postgres@127.0.0.1:5432/test]

Each run gets a fresh PostgreSQL database and a fresh home; the daemons are real subprocesses
(`daemon --interval 0.05 --no-watch`, `--shared` for the 3-daemon run). The time is from the
first daemon's start until every voucher is in the database (polled every 0.1 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

LINES = [
    {"product": "ALM-EJ", "description": "Almuerzo ejecutivo", "quantity": "2", "unit_price": "16000.00",
     "discount": "0.00", "taxes": [{"type": "INC", "rate": "8"}]},
    {"product": "GAS-400", "description": "Gaseosa 400 ml", "quantity": "1", "unit_price": "4000.00",
     "discount": "0.00", "taxes": [{"type": "IVA", "rate": "19"}]},
]


def generate(data: Path, cajas: int, vouchers: int, day: dt.date) -> list[tuple[str, Path]]:
    from syscafe_sync.caja import CajaWriter, make_voucher

    tz = dt.timezone(dt.timedelta(hours=-5))
    out = []
    for c in range(1, cajas + 1):
        name, code = f"CAJA{c:02d}", f"FV{c:02d}"
        writer = CajaWriter(data / name)
        writer.write_caja_json(name, [code], "900123456-7")
        for n in range(1, vouchers + 1):
            issued = dt.datetime.combine(day, dt.time(8, 0), tz) + dt.timedelta(seconds=n)
            writer.write_voucher(make_voucher(name, code, n, issued, LINES, None, prefix=f"POS{c}"), day)
        out.append((name, data / name))
    return out


def admin(url: str):
    import psycopg2

    u = urlparse(url)
    conn = psycopg2.connect(host=u.hostname, port=u.port or 5432, user=u.username, password=u.password,
                            dbname=u.path.lstrip("/") or "postgres")
    conn.autocommit = True
    return conn


def fresh_database(conn, url: str) -> tuple[str, str]:
    name = f"syscafe_bench_{secrets.token_hex(4)}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    u = urlparse(url)
    return name, u._replace(path=f"/{name}").geturl()


def drop(conn, name: str) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')


def cli(home: Path, db: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "syscafe_sync", "--home", str(home), "--db", db, *args], check=True,
                   stdout=subprocess.DEVNULL)


def run(workdir: Path, conn, pg: str, cajas: list[tuple[str, Path]], daemons: int, total: int, workers: int) -> dict:
    import psycopg2

    name, db = fresh_database(conn, pg)
    home = workdir / f"home-{daemons}"
    shutil.rmtree(home, ignore_errors=True)
    try:
        cli(home, db, "init")
        (home / "config.toml").write_text(f"[sync]\nwatch = false\n[limits]\nworkers = {workers}\nlease_s = 10.0\n")
        for caja, root in cajas:
            cli(home, db, "caja", "add", caja, "--path", str(root))
        args = ["--interval", "0.05", "--no-watch"] + (["--shared"] if daemons > 1 else [])
        env = {**os.environ, "SYSCAFE_SYNC_DB": db}
        logs = [open(workdir / f"daemon-{daemons}-{i}.log", "w") for i in range(daemons)]
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "syscafe_sync", "--home", str(home), "daemon", *args],
                                  stdout=log, stderr=subprocess.STDOUT, env=env) for log in logs]
        watch = psycopg2.connect(db)
        watch.autocommit = True
        count = 0
        try:
            while count < total:
                time.sleep(0.1)
                with watch.cursor() as cur:
                    cur.execute("SELECT count(*) FROM voucher")
                    count = cur.fetchone()[0]
                if any(p.poll() is not None for p in procs):
                    raise SystemExit(f"a daemon ended early; see {workdir}/daemon-{daemons}-*.log")
            seconds = time.perf_counter() - started
            with watch.cursor() as cur:
                cur.execute("SELECT count(DISTINCT holder) FROM lease WHERE name LIKE 'owner:%%'")
                owners = cur.fetchone()[0]
        finally:
            watch.close()
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(60)
        return {"daemons": daemons, "seconds": seconds, "per_s": total / seconds, "owners": owners or 1}
    finally:
        drop(conn, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--cajas", type=int, default=30)
    ap.add_argument("--vouchers", type=int, default=200, help="per caja")
    ap.add_argument("--workers", type=int, default=4, help="limits.workers of each daemon")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test", help="a database to connect to for creating the bench's own")
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pass-bench-"))
    day = dt.datetime.now(dt.timezone(dt.timedelta(hours=-5))).date()  # the daemon imports today (Bogota)
    t0 = time.perf_counter()
    cajas = generate(workdir / "cajas", args.cajas, args.vouchers, day)
    total = args.cajas * args.vouchers
    print(f"{args.cajas} cajas x {args.vouchers} vouchers = {total} written in {time.perf_counter() - t0:.1f} s; "
          f"{os.cpu_count()} CPUs; limits.workers = {args.workers} per daemon")
    conn = admin(args.pg)
    rows = [run(workdir, conn, args.pg, cajas, n, total, args.workers) for n in (1, 3)]
    conn.close()
    print("\n| daemons | time to import all (s) | vouchers/s | daemons owning cajas at the end |")
    print("| ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['daemons']} | {r['seconds']:.1f} | {r['per_s']:.0f} | {r['owners'] if r['daemons'] > 1 else '-'} |")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
