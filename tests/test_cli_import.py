"""The import through the real program: exit codes, JSON shapes, progress, SIGKILL, two runs at once."""

from __future__ import annotations

import json
import os
import pty
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DAY, cli_json, db_rows, run_cli, write_config


@pytest.fixture
def shop(tmp_path, caja_folder):
    """An initialised home (through the CLI) with CAJA1 and CAJA2 registered."""
    home = tmp_path / "home"
    run_cli(home, "init", check=0)
    folders = {}
    for name in ("CAJA1", "CAJA2"):
        folders[name] = caja_folder(name)
        run_cli(home, "caja", "add", name, "--path", str(folders[name].root), check=0)
    return home, folders


def test_import_exit_codes_and_json_shape(shop):
    home, f = shop
    f["CAJA1"].add_many(1, 3)
    f["CAJA2"].add(1)
    doc = cli_json(home, "import", "--date", DAY.isoformat())
    assert doc["action"] == "import"
    assert [(r["caja"], r["outcome"], r["imported"], r["updated"], r["skipped"], r["refused"]) for r in doc["results"]] == [
        ("CAJA1", "ok", 3, 0, 0, 0), ("CAJA2", "ok", 1, 0, 0, 0)]
    f["CAJA2"].raw(f"movements/{DAY}/FV2-2.json", "{oops")
    proc = run_cli(home, "--json", "import", "CAJA2", "--date", DAY.isoformat(), check=1)
    [r] = json.loads(proc.stdout)["results"]
    assert r["refused"] == 1 and r["refusals"][0]["path"] == f"movements/{DAY}/FV2-2.json"


def test_import_of_an_unknown_caja_or_bad_date_is_a_usage_error(shop):
    home, _ = shop
    proc = run_cli(home, "import", "CAJA9", check=2)
    assert "CAJA9" in proc.stderr and "caja list" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli(home, "import", "--date", "22/11/2026", check=2)
    assert "22/11/2026" in proc.stderr and "YYYY-MM-DD" in proc.stderr
    logged = [json.loads(line) for line in run_cli(home, "--json", "log", "--action", "import", check=0).stdout.splitlines()]
    assert [(r["outcome"], "CAJA9" in r["message"] or "22/11/2026" in r["message"]) for r in logged] == [("refused", True)] * 2


def test_vouchers_list_and_show(shop):
    home, f = shop
    f["CAJA1"].add_many(1, 2)
    f["CAJA2"].add(5)
    run_cli(home, "import", "--date", DAY.isoformat(), check=0)
    listed = cli_json(home, "vouchers", "list", "--caja", "CAJA1", "--date", DAY.isoformat())
    assert listed == {"vouchers": [
        {"caja": "CAJA1", "code": "FV1", "number": n, "date": "2026-11-22", "issued_at": v["issued_at"], "kind": "pos_invoice",
         "status": "active", "total": "35864.00", "findings": [], "accounting": "pending", "accounting_reason": None}
        for n, v in zip((1, 2), listed["vouchers"])]}
    assert [v["number"] for v in cli_json(home, "vouchers", "list", "--code", "FV2")["vouchers"]] == [5]
    shown = cli_json(home, "vouchers", "show", "FV2-5")
    assert shown["totals"] == {"base": "32800.00", "tax": "3064.00", "tip": "0.00", "total": "35864.00"}
    assert [line["taxes"][0]["type"] for line in shown["lines"]] == ["INC", "IVA"]
    text = run_cli(home, "vouchers", "show", "FV2-5", check=0).stdout
    assert "Almuerzo ejecutivo" in text and "total 35864.00" in text
    assert "FV2-6" in run_cli(home, "vouchers", "show", "FV2-6", check=2).stderr


def test_progress_is_shown_on_a_terminal_only(shop):
    home, f = shop
    f["CAJA1"].add_many(1, 30)
    cmd = [sys.executable, "-m", "syscafe_sync", "--home", str(home), "import", "--date", DAY.isoformat()]
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(60)
    os.close(master)
    assert b"CAJA1" in out and b"30/30" in out
    f["CAJA2"].add_many(1, 30)
    piped = run_cli(home, "import", "--date", DAY.isoformat(), check=0)
    assert "30/30" not in piped.stderr and piped.stderr == ""


def snapshot(home: Path) -> dict:
    """Everything an import decides, without the times at which it happened."""
    q = lambda sql: db_rows(home, sql)  # noqa: E731
    return {
        "vouchers": q("select caja, code, number, day, status, total, sha256, document, findings from voucher"),
        "lines": q("select v.code, v.number, l.line_no, l.product, l.quantity, l.unit_price, l.discount, l.base from voucher_line l join voucher v on v.id = l.voucher_id"),
        "taxes": q("select v.code, v.number, t.line_no, t.type, t.rate, t.amount from voucher_tax t join voucher v on v.id = t.voucher_id"),
        "payments": q("select v.code, v.number, p.line_no, p.method, p.amount from voucher_payment p join voucher v on v.id = p.voucher_id"),
        "refusals": q("select caja, path, reason from refusal where resolved_at is null"),
    }


def no_half_voucher(home: Path) -> None:
    rows = db_rows(home, "select v.document, (select count(*) from voucher_line l where l.voucher_id = v.id), "
                         "(select count(*) from voucher_payment p where p.voucher_id = v.id) from voucher v")
    for document, lines, payments in rows:
        doc = json.loads(document)
        assert (int(lines), int(payments)) == (len(doc["lines"]), len(doc["payments"]))


@pytest.fixture
def big_shop(shop):
    home, f = shop
    f["CAJA1"].add_many(1, 1500)
    f["CAJA2"].add_many(1, 1500)
    f["CAJA2"].raw(f"movements/{DAY}/FV2-9999.json", "{broken")
    write_config(home, limits={"batch_size": 50})
    return home, f


@pytest.mark.slow
def test_sigkill_at_any_instant_then_one_run_gives_the_clean_state(big_shop, tmp_path):
    home, f = big_shop
    reference = tmp_path / "reference"
    run_cli(reference, "init", check=0)
    for name, folder in f.items():
        run_cli(reference, "caja", "add", name, "--path", str(folder.root), check=0)
    run_cli(reference, "import", "--date", DAY.isoformat(), check=1)
    rng = random.Random(7)
    cmd = [sys.executable, "-m", "syscafe_sync", "--home", str(home), "import", "--date", DAY.isoformat()]
    count = lambda: int(db_rows(home, "select count(*) from voucher")[0][0])  # noqa: E731
    kills = 0
    for _ in range(3):
        # Killed once it has imported a random share of what is left, then a little later (inside the next
        # batch): never after it is done, however fast the machine; each run has less left to do.
        done = count()
        target = done + int(rng.uniform(0.1, 0.4) * (3000 - done))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and count() < target:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        no_half_voucher(home)
    assert kills == 3, "an import ended before it reached the point where it was to be killed"
    run_cli(home, "import", "--date", DAY.isoformat(), check=1)
    assert snapshot(home) == snapshot(reference)
    assert len(snapshot(home)["vouchers"]) == 3000


@pytest.mark.slow
def test_two_imports_at_once_never_interleave_and_import_each_voucher_once(big_shop):
    home, f = big_shop
    cmd = [sys.executable, "-m", "syscafe_sync", "--home", str(home), "--json", "import", "--date", DAY.isoformat()]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    imported = {"CAJA1": 0, "CAJA2": 0}
    for doc in outs:
        for r in doc["results"]:
            assert r["outcome"] == "ok", r
            imported[r["caja"]] += r["imported"]
    # Each voucher was imported by exactly one of the two runs.
    assert imported == {"CAJA1": 1500, "CAJA2": 1500}
    assert len(snapshot(home)["vouchers"]) == 3000
    no_half_voucher(home)


def test_money_is_stored_as_decimal_writes_it_whichever_way_the_caja_spelled_it(shop):
    """Through the program, on real files: a price written "16000.00" is stored as it came; one written
    " 16_000.00" (which Decimal takes) is stored as "16000.00" too, never as the caja's spelling."""
    from conftest import voucher

    home, f = shop
    f["CAJA1"].add(1)
    odd = voucher("CAJA1", "FV1", 2)
    odd["lines"][0]["unit_price"] = " 16_000.00"
    odd["totals"]["tip"] = "+0.00"
    f["CAJA1"].raw(f"movements/{DAY}/FV1-2.json", json.dumps(odd))
    doc = cli_json(home, "import", "CAJA1", "--date", DAY.isoformat())
    assert [(r["imported"], r["refused"], r["flagged"]) for r in doc["results"]] == [(2, 0, 0)]
    assert db_rows(home, "SELECT v.number, l.unit_price FROM voucher_line l JOIN voucher v ON v.id = l.voucher_id "
                         "WHERE l.line_no = 0") == [("1", "16000.00"), ("2", "16000.00")]
    assert db_rows(home, "SELECT number, tip FROM voucher") == [("1", "0.00"), ("2", "0.00")]
