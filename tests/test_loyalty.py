"""Loyalty ledgers: counted once, read incrementally, right after rewrites, cuts and kills."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import DAY, cli_json, db_rows, run_cli

from syscafe_sync import importer, loyalty, push, registry
from syscafe_sync.caja.catalog import read_catalog
from syscafe_sync.db.models import LoyaltyEntry

pytestmark = pytest.mark.both_roots  # each test on local folders and on smb:// roots (conftest.py)


def entry(seq: int, customer: str = "1020304050", points: int = 10, kind: str = "earn", voucher: str | None = None) -> dict:
    e = {"seq": seq, "customer": customer, "kind": kind, "points": points, "at": f"2026-11-22T10:{seq % 60:02d}:00-05:00"}
    if voucher:
        e["voucher"] = voucher
    return e


def ledger_line(e: dict) -> bytes:
    return (json.dumps(e) + "\n").encode()


@pytest.fixture
def caja(cfg, caja_folder):
    c = caja_folder("CAJA1")
    registry.add("CAJA1", c.url)
    return c


def ledger(c, day=DAY):
    return c.root / "loyalty" / f"{day}.jsonl"


def sync(cfg):
    return loyalty.sync(cfg).results[0]


def test_entries_count_once_however_often_the_ledger_is_read(cfg, caja):
    caja.writer.append_loyalty(DAY, [entry(1), entry(2, points=-5, kind="redeem")])
    assert sync(cfg).entries == 2
    assert sync(cfg).entries == 0
    caja.writer.append_loyalty(DAY, [entry(3)])
    r = sync(cfg)
    assert (r.entries, r.duplicates) == (1, 0)
    assert loyalty.balances() == [{"customer": "1020304050", "points": 15}]


def test_a_last_line_without_newline_waits_for_the_next_pass(cfg, caja):
    path = ledger(caja)
    path.parent.mkdir(parents=True)
    path.write_bytes(ledger_line(entry(1)) + json.dumps(entry(2)).encode()[:20])
    r = sync(cfg)
    assert (r.entries, r.refused) == (1, 0)
    path.write_bytes(ledger_line(entry(1)) + ledger_line(entry(2)))
    r = sync(cfg)
    assert (r.entries, r.refused, r.reread) == (1, 0, [])
    assert LoyaltyEntry.select().count() == 2


def test_the_incremental_pass_does_not_read_the_old_bytes_again(cfg, caja):
    caja.writer.append_loyalty(DAY, [entry(n) for n in range(1, 400)])
    assert sync(cfg).entries == 399
    path = ledger(caja)
    data = bytearray(path.read_bytes())
    data[0:1] = b"#"  # garbage far before the remembered tail: a pass that re-read old bytes would refuse it
    path.write_bytes(bytes(data))
    caja.writer.append_loyalty(DAY, [entry(400)])
    r = sync(cfg)
    assert (r.entries, r.refused, r.reread) == (1, 0, [])


def test_a_rewritten_ledger_is_read_again_and_still_counted_once(cfg, caja):
    caja.writer.append_loyalty(DAY, [entry(1), entry(2), entry(3)])
    sync(cfg)
    path = ledger(caja)
    # The POS rewrites the file: other formatting, same entries, plus a new one, same length prefix changed.
    path.write_bytes(b"".join(json.dumps(entry(n), indent=None, separators=(",", ":")).encode() + b"\n" for n in (3, 1, 2, 4)))
    r = sync(cfg)
    assert (r.entries, r.duplicates) == (1, 3) and "rewritten" in r.reread[0]
    assert LoyaltyEntry.select().count() == 4


def test_a_truncated_ledger_is_read_again_from_the_start(cfg, caja):
    caja.writer.append_loyalty(DAY, [entry(1), entry(2), entry(3)])
    sync(cfg)
    ledger(caja).write_bytes(ledger_line(entry(1)))
    r = sync(cfg)
    assert (r.entries, r.duplicates) == (0, 1) and "shorter" in r.reread[0]
    caja.writer.append_loyalty(DAY, [entry(5)])
    assert sync(cfg).entries == 1
    assert LoyaltyEntry.select().count() == 4


def test_a_bad_line_is_refused_with_file_and_line_and_the_rest_is_read(cfg, caja, home):
    path = ledger(caja)
    path.parent.mkdir(parents=True)
    path.write_bytes(ledger_line(entry(1)) + b"{broken\n" + ledger_line({**entry(3), "points": 1.5}) + ledger_line(entry(4)))
    proc = run_cli(home, "--json", "loyalty", "sync", check=1)
    [r] = json.loads(proc.stdout)["results"]
    assert r["entries"] == 2
    assert [(f["path"], f["line"]) for f in r["refusals"]] == [(f"loyalty/{DAY}.jsonl", 2), (f"loyalty/{DAY}.jsonl", 3)]
    assert "points must be a whole number" in r["refusals"][1]["reason"]
    log = run_cli(home, "log", "--action", "loyalty sync", "--level", "warning", check=0).stdout
    assert f"loyalty/{DAY}.jsonl line 2 refused" in log


def test_balances_findings_and_the_shared_catalog(cfg, caja, caja_folder):
    caja.add(1)
    importer.import_day(cfg, [], DAY, "skip")
    caja.writer.append_loyalty(DAY, [entry(1, "A", 30, voucher="FV1-1"), entry(2, "B", 10, voucher="FV1-77"),
                                     entry(3, "B", -25, kind="redeem")])
    result = loyalty.sync(cfg)
    kinds = sorted((f["kind"], f["customer"]) for f in result.findings)
    assert kinds == [("negative_balance", "B"), ("voucher_missing", "B")]
    assert loyalty.customer("B")["points"] == -15
    push.push(cfg, [], "partial")
    view = read_catalog(caja.root, "loyalty_balances")
    assert {k: r["points"] for k, r in view.records.items()} == {"A": "30", "B": "-15"}


def test_the_balances_catalog_cannot_be_loaded_by_hand(home, tmp_path):
    f = tmp_path / "b.csv"
    f.write_text("customer,points\nA,1\n")
    assert "computed from the cajas' points ledgers" in run_cli(home, "catalogs", "load", "loyalty_balances", str(f), check=2).stderr


def test_loyalty_show_shapes(home, caja):
    caja.writer.append_loyalty(DAY, [entry(1, "A", 5), entry(2, "A", 7)])
    run_cli(home, "loyalty", "sync", check=0)
    assert cli_json(home, "loyalty", "show")["balances"] == [{"customer": "A", "points": 12}]
    one = cli_json(home, "loyalty", "show", "A")
    assert (one["customer"], one["points"], [e["seq"] for e in one["entries"]]) == ("A", 12, [1, 2])
    assert "has no loyalty movements" in run_cli(home, "loyalty", "show", "Z", check=2).stderr


@pytest.mark.slow
def test_sigkill_mid_sync_then_the_exact_result(home, caja, tmp_path):
    days = [f"2026-11-{d:02d}" for d in range(1, 21)]
    seq = 0
    for day in days:
        lines = []
        for _ in range(5000):
            seq += 1
            lines.append(ledger_line(entry(seq, f"C{seq % 97}", seq % 13 - 3)))
        path = caja.root / "loyalty" / f"{day}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(lines))
    cmd = [sys.executable, "-m", "syscafe_sync", "--home", str(home), "loyalty", "sync"]
    t0 = time.monotonic()
    reference = tmp_path / "ref"
    run_cli(reference, "init", check=0)
    run_cli(reference, "caja", "add", "CAJA1", "--path", caja.url, check=0)
    run_cli(reference, "loyalty", "sync", check=0)
    seconds = time.monotonic() - t0
    kills = 0
    for fraction in (0.5, 0.7, 0.9):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds * fraction)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    run_cli(home, "loyalty", "sync", check=0)

    def state(h):
        return db_rows(h, "select caja, seq, customer, kind, points, path, line from loyalty_entry")

    assert kills >= 1
    assert state(home) == state(reference) and len(state(home)) == 100000
    assert cli_json(home, "loyalty", "show") == cli_json(reference, "loyalty", "show")
