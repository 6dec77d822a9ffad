"""Loyalty ledger benchmark: a first sync of a 100,000-entry ledger, then an incremental sync of 100 new entries.

    .venv/bin/python bench/loyalty_bench.py [--entries 100000] [--new 100] [--files 1]

Prints figures; asserts nothing about time. The incremental sync must not
re-read the old bytes: the script counts the bytes the storage layer reads.
Entries carry no voucher reference: with one, every entry would be a
"voucher never received" finding, since no voucher is imported here.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from syscafe_sync import config as config_mod
from syscafe_sync import loyalty, registry, setup
from syscafe_sync.caja import CajaWriter
from syscafe_sync.storage import local

DAY = "2026-11-22"


def line(seq: int) -> bytes:
    return (json.dumps({"seq": seq, "customer": f"C{seq % 5000:05d}", "kind": "earn", "points": seq % 50 + 1,
                        "at": "2026-11-22T14:42:10-05:00"}) + "\n").encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--new", type=int, default=100)
    ap.add_argument("--files", type=int, default=1, help="spread the entries over this many day files")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="syscafe-loyalty-bench-"))
    print(f"machine: {platform.platform()}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    try:
        root = work / "CAJA1"
        CajaWriter(root).write_caja_json("CAJA1", ["FV1"], "900123456-7")
        per = args.entries // args.files
        ledgers = []
        for f in range(args.files):
            path = root / "loyalty" / f"2026-11-{f + 1:02d}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"".join(line(f * per + i + 1) for i in range(per)))
            ledgers.append(path)
        size = sum(p.stat().st_size for p in ledgers)
        home = work / "home"
        setup.init(config_mod.load(home, must_exist=False))
        cfg = config_mod.load(home)
        registry.add("CAJA1", str(root))

        read_bytes = [0]
        real = local.LocalStorage.read_range

        def counted(self, rel, offset, length=None):
            data = real(self, rel, offset, length)
            read_bytes[0] += len(data)
            return data

        local.LocalStorage.read_range = counted

        def timed(label: str) -> None:
            read_bytes[0] = 0
            t = time.perf_counter()
            result = loyalty.sync(cfg)
            seconds = time.perf_counter() - t
            r = result.results[0]
            print(f"{label:<34} {seconds:8.3f} s  {r.entries:>7} entries  {r.entries / seconds if seconds else 0:>9,.0f}/s  "
                  f"{read_bytes[0]:>10,} bytes read")

        print(f"ledger: {args.entries:,} entries in {args.files} file(s), {size:,} bytes")
        timed("first sync")
        with open(ledgers[-1], "ab") as f:
            f.write(b"".join(line(args.entries + i + 1) for i in range(args.new)))
        timed(f"incremental sync ({args.new} new)")
        timed("sync with nothing new")
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")
        print("goal: the incremental sync does not re-read the old bytes -> it reads the new bytes plus a 4 KiB tail per file")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
