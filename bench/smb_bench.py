#!/usr/bin/env python
"""SMB import benchmark: one smb:// caja on a loopback Samba server against the same folder read locally.

Prints figures; asserts nothing about time. See bench/README.md.

    .venv/bin/python bench/smb_bench.py [--vouchers 2000] [--read-workers 1,8] [--repeat 1]

Needs Debian's `samba` and root (tests/samba.py starts smbd with a throw-away user).
Each scenario runs in its own subprocess of this script, so an SMB import pays
for its own connection, as one pass of the service does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from import_bench import DAY, child_result, generate, table, warm  # noqa: E402  same folder: shared with the import bench
from samba import PASSWORD, USER, SambaServer, unavailable  # noqa: E402  the tests' throw-away Samba server

MIB = 1024  # ru_maxrss is in KiB on Linux


def run_scenario(mode: str, root: str, home: Path, fresh: bool, read_workers: int) -> dict:
    """One import into `home` (a new one when `fresh`), timed around `import_day` only."""
    from syscafe_sync import config as config_mod
    from syscafe_sync import importer, registry, setup

    if fresh:
        shutil.rmtree(home, ignore_errors=True)
    setup.init(config_mod.load(home, must_exist=False))  # creates, or opens and connects, the home
    cfg = config_mod.load(home)
    cfg.limits["smb_read_workers"] = read_workers  # as if set in config.toml
    if fresh:
        registry.add("CAJA01", root, codes=["FV01", "NC01"], config=cfg)
    started = time.perf_counter()
    [r] = importer.import_day(cfg, [], DAY, mode).results
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "outcome": r.outcome, "message": r.message, "imported": r.imported,
            "updated": r.updated, "skipped": r.skipped, "refused": r.refused,
            "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def child(args) -> None:
    out = run_scenario(args.mode, args.root, Path(args.home), args.fresh, args.read_workers)
    print("RESULT " + json.dumps(out), flush=True)


def run_child(mode: str, root: str, home: Path, fresh: bool, read_workers: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--mode", mode, "--root", root,
           "--home", str(home), "--read-workers", str(read_workers)] + (["--fresh"] if fresh else [])
    return child_result(f"{mode} {root}", cmd)


def three(root: str, home: Path, read_workers: int, repeat: int) -> list[tuple[str, dict]]:
    """First import, re-run with nothing new, overwrite with nothing changed; the fastest of `repeat` rounds each."""
    rounds = []
    for _ in range(repeat):
        rounds.append([("first import (skip)", run_child("skip", root, home, True, read_workers)),
                       ("re-run, nothing new", run_child("skip", root, home, False, read_workers)),
                       ("overwrite, nothing changed", run_child("overwrite", root, home, False, read_workers))])
    return [(label, min((r[i][1] for r in rounds), key=lambda x: x["seconds"])) for i, (label, _) in enumerate(rounds[0])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vouchers", type=int, default=2000)
    ap.add_argument("--read-workers", default="1,8", help="smb_read_workers values to compare (comma-separated)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the fastest of each step is shown")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    ap.add_argument("--fresh", action="store_true", help=argparse.SUPPRESS)
    args, _ = ap.parse_known_args()
    if args.child:
        args.read_workers = int(args.read_workers)
        return child(args)
    why = unavailable()
    if why:
        sys.exit(f"smb_bench needs a Samba server: {why}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    work = Path(tempfile.mkdtemp(prefix="syscafe-smb-bench-"))
    server = SambaServer(work / "samba", shares=("bench",)).start()
    # The password reaches the children the way a service would give it: the environment.
    os.environ["SYSCAFE_SYNC_SMB_PASSWORD"] = PASSWORD
    try:
        data = server.shares["bench"]
        took = generate(data, 1, args.vouchers)
        files, size = warm(data)
        print(f"data: 1 caja x {args.vouchers} vouchers for {DAY} ({files} files, {size / 2**20:.1f} MiB), "
              f"written in {took:.1f} s (not timed); served by smbd on 127.0.0.1:{server.port}\n")
        rows = []
        local = str(data / "CAJA01")
        for label, r in three(local, work / "home-local", 1, args.repeat):
            rows.append(["local folder", "-", label, r])
        for n in [int(x) for x in args.read_workers.split(",") if x.strip()]:
            for label, r in three(server.url("bench", "CAJA01", user=USER), work / f"home-smb-{n}", n, args.repeat):
                rows.append(["smb:// loopback", n, label, r])
        table(["root", "read workers", "step", "seconds", "vouchers/s", "imported", "updated", "skipped", "peak RSS MiB"],
              [[root, n, label, f"{r['seconds']:.3f}", f"{args.vouchers / r['seconds']:,.0f}", r["imported"],
                r["updated"], r["skipped"], f"{r['rss_peak'] / MIB:.1f}"] for root, n, label, r in rows])
        for root, n, label, r in rows:
            if r["outcome"] != "ok" or r["refused"]:
                print(f"WARNING: {root} {label}: {r['outcome']}: {r['message']}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
