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
from syscafe_sync.db.models import LoyaltyEntry, Notice, SyncLog

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


def test_a_number_past_its_column_is_refused_as_that_line_and_the_rest_counted(cfg, caja):
    top = 2**63 - 1  # a BIGINT's, what seq, points and the voucher's number are stored in on both databases
    path = ledger(caja)
    path.parent.mkdir(parents=True)
    path.write_bytes(ledger_line(entry(1)) + ledger_line(entry(top + 1)) + ledger_line(entry(3, points=-top - 2))
                     + ledger_line(entry(4, voucher="FV1-" + "9" * 20)) + ledger_line(entry(top, points=-top)))
    ledger(caja, "2026-11-23").write_bytes(ledger_line(entry(6)))
    r = sync(cfg)
    assert (r.outcome, r.entries, r.refused) == ("ok", 3, 3)
    assert [f["line"] for f in r.refusals] == [2, 3, 4]
    assert f"seq = {top + 1} is out of range (from {-top - 1} to {top})" in r.refusals[0]["reason"]
    assert f"points = {-top - 2} is out of range" in r.refusals[1]["reason"]
    assert f"has a number out of range (at most {top})" in r.refusals[2]["reason"]
    assert sorted(e.seq for e in LoyaltyEntry.select()) == [1, 6, top]
    assert sync(cfg).refused == 0, "refused once: the cursor moved past the lines"


@pytest.mark.local_only("Samba hides a link that leads outside its share (wide links = no): an smb:// listing never "
                        "shows it")
def test_a_link_leading_outside_the_root_is_refused_by_name_logged_once_and_the_rest_read(cfg, caja, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(ledger_line(entry(99)))
    ledger(caja).parent.mkdir(parents=True)
    ledger(caja, "2026-11-21").symlink_to(outside)
    ledger(caja).write_bytes(ledger_line(entry(1)))
    for n in range(2):
        r = sync(cfg)
        assert (r.outcome, r.refused) == ("ok", 1)
        assert r.refusals == [{"path": "loyalty/2026-11-21.jsonl", "line": None, "reason": loyalty.OUTSIDE}]
        assert "1 files refused" in r.message
    assert [e.seq for e in LoyaltyEntry.select()] == [1]
    warned = SyncLog.select().where((SyncLog.action == "loyalty sync") & (SyncLog.outcome == "refused"))
    assert [w.message for w in warned] == [f"loyalty/2026-11-21.jsonl refused: {loyalty.OUTSIDE}"]


def test_a_link_inside_the_root_is_read(cfg, caja):
    caja.raw("kept/other.jsonl", ledger_line(entry(50)))
    ledger(caja).parent.mkdir(parents=True)
    ledger(caja).symlink_to(caja.root / "kept" / "other.jsonl")
    r = sync(cfg)
    assert (r.outcome, r.entries, r.refused) == ("ok", 1, 0)


def test_a_line_longer_than_a_chunk_is_refused_and_the_lines_after_it_read(cfg, caja):
    path = ledger(caja)
    path.parent.mkdir(parents=True)
    long = ledger_line({**entry(2), "note": "x" * (loyalty.CHUNK + loyalty.CHUNK // 2)})
    path.write_bytes(ledger_line(entry(1)) + long[:-1])
    for _ in range(2):
        r = sync(cfg)
        assert (r.refused, LoyaltyEntry.select().count()) == (0, 1), "its end is not written yet: it waits"
    with path.open("ab") as f:
        f.write(b"\n" + ledger_line(entry(3)) + ledger_line(entry(4)))
    r = sync(cfg)
    assert (r.outcome, r.entries, r.refused) == ("ok", 2, 1)
    [refusal] = r.refusals
    assert refusal["line"] == 2 and f"line 2 is {len(long)} bytes long, over the {loyalty.CHUNK}" in refusal["reason"]
    caja.writer.append_loyalty(DAY, [entry(5)])
    r = sync(cfg)
    assert (r.entries, r.refused, r.reread) == (1, 0, [])
    assert sorted(e.seq for e in LoyaltyEntry.select()) == [1, 3, 4, 5]
    assert LoyaltyEntry.get(LoyaltyEntry.seq == 5).line == 5


def test_a_bare_cr_inside_a_line_is_whitespace_not_a_line_end(cfg, caja):
    path = ledger(caja)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"seq": 1,\r "customer": "C1", "kind": "earn", "points": 10}\n' + ledger_line(entry(2)).replace(b"\n", b"\r\n"))
    r = sync(cfg)
    assert (r.entries, r.refused) == (2, 0), r.refusals
    assert [e.line for e in LoyaltyEntry.select().order_by(LoyaltyEntry.seq)] == [1, 2]


def test_names_that_are_not_ledgers_are_left_and_logged_once(cfg, caja):
    caja.writer.append_loyalty(DAY, [entry(1)])
    caja.raw("loyalty/ledger-nov.jsonl", ledger_line(entry(2)))
    caja.raw("loyalty/2026-11-23.json", ledger_line(entry(3)))
    caja.raw("loyalty/.2026-11-24.jsonl.tmp", ledger_line(entry(4)))
    (caja.root / "loyalty" / "old").mkdir()
    for _ in range(2):
        r = sync(cfg)
        assert (r.outcome, r.refused) == ("ok", 0)
    assert [e.seq for e in LoyaltyEntry.select()] == [1]
    assert sorted((n.path, n.kind) for n in Notice.select().where(Notice.caja == "CAJA1")) == [
        ("loyalty/2026-11-23.json", "unknown name"), ("loyalty/ledger-nov.jsonl", "unknown name"),
        ("loyalty/old", "unknown name")]


@pytest.mark.parametrize("cut", [b"", b'{"seq": 1, "cust'])
def test_a_ledger_cut_to_no_complete_line_is_told_once(cfg, caja, cut):
    caja.writer.append_loyalty(DAY, [entry(1), entry(2)])
    sync(cfg)
    ledger(caja).write_bytes(cut)
    assert "shorter" in sync(cfg).reread[0]
    assert sync(cfg).reread == []
    caja.writer.append_loyalty(DAY, [entry(3)])  # the writer drops a torn last line first
    r = sync(cfg)
    assert (r.entries, r.refused, r.reread) == (1, 0, [])


def test_balances_past_what_a_bigint_holds_are_summed_exactly(cfg, caja):
    top = 2**63 - 1
    caja.writer.append_loyalty(DAY, [entry(1, "A", top), entry(2, "A", top), entry(3, "A", -7, kind="redeem"),
                                     entry(4, "B", -top - 1, kind="adjust"), entry(5, "B", -top - 1, kind="adjust"),
                                     entry(6, "C", -5, kind="redeem"), entry(7, "C", 3)])
    result = loyalty.sync(cfg)
    assert result.results[0].entries == 7
    assert loyalty.balances() == [{"customer": "A", "points": 2 * top - 7}, {"customer": "B", "points": -2 * top - 2},
                                  {"customer": "C", "points": -2}]


@pytest.mark.parametrize("text, words", [("A\u0000B", "customer holds a NUL character"),
                                         ("Caf\ud83d", "customer holds half of a character (\\ud83d without its pair)")])
def test_a_customer_no_database_holds_is_refused_as_that_line(cfg, caja, text, words):
    """A NUL (which PostgreSQL's text cannot hold) or half a UTF-16 character failed the whole chunk's
    insert, every pass; it is that one line's refusal."""
    path = ledger(caja)
    path.parent.mkdir(parents=True)
    bad = json.dumps({**entry(2), "customer": text}).encode("utf-8")
    path.write_bytes(ledger_line(entry(1)) + bad + b"\n" + ledger_line(entry(3)))
    result = loyalty.sync(cfg)
    [r] = result.results
    assert (r.outcome, r.entries) == ("ok", 2), r.message
    assert words in r.refusals[0]["reason"] and r.refusals[0]["line"] == 2
