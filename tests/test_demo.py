"""`syscafe-sync demo`, from the checkout and from an installed copy of the package."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent


def _check_report(report: dict) -> None:
    by = {(d["date"], r["caja"]): r for d in report["days"] for r in d["results"]}
    assert {k: v["imported"] for k, v in by.items()} == {
        ("2026-11-20", "CAJA1"): 9, ("2026-11-20", "CAJA2"): 12, ("2026-11-20", "CAJA3"): 6,
        ("2026-11-21", "CAJA1"): 13, ("2026-11-21", "CAJA2"): 8, ("2026-11-21", "CAJA3"): 7,
    }
    refused = {(r["caja"], f["path"]) for r in by.values() for f in r["refusals"]}
    assert refused == {
        ("CAJA2", "movements/2026-11-21/FV1-9001.json"),
        ("CAJA3", "movements/2026-11-21/FV3-2015.json"),
    }
    assert {c["catalog"] for c in report["catalogs_loaded"]} == {"products", "groups", "taxes", "payment_methods", "sellers", "customers"}
    assert sum(r["entries"] for r in report["loyalty"]["results"]) == 31
    assert [(r["caja"], r["new"], r["conflicts"]) for r in report["rules"]["results"]] == [("CAJA1", 2, 0), ("CAJA2", 0, 0), ("CAJA3", 1, 0)]
    # the audit: every code complete but CAJA3's FV3 on 2026-11-21, where FV3-2010 never reached the folder
    statuses = {(d["date"], c["caja"], code): e["status"] for d in report["audit"] for c in d["cajas"] for code, e in c["codes"].items()}
    assert {k for k, s in statuses.items() if s != "complete"} == {("2026-11-21", "CAJA3", "FV3")}
    fv3 = [c for c in report["audit"][1]["cajas"] if c["caja"] == "CAJA3"][0]["codes"]["FV3"]
    assert fv3["missing"] == [2010] and fv3["count"] == 7 and fv3["expected"]["count"] == 8
    assert [(f["code"], f["number"], f["kind"]) for f in report["check"]["findings"]] == [("FV1", 1014, "payments")]
    assert report["check"]["gaps"] == [{"caja": "CAJA3", "code": "FV3", "date": None, "missing": [2010], "missing_count": 1}]
    pushed = report["catalogs_push"]["results"]
    assert [(r["caja"], r["outcome"]) for r in pushed] == [("CAJA1", "ok"), ("CAJA2", "ok"), ("CAJA3", "ok")]
    acc = report["accounting"]
    assert acc["outcome"] == "ok" and acc["destination"] == "csv" and acc["held"] == [] and acc["failed"] == []
    assert len(acc["posted"]) == 54 and acc["unchanged"] == ["FV2-1515"]  # the voided one posts nothing
    rows = list(csv.DictReader(open(acc["file"], encoding="utf-8")))
    assert {r["voucher"] for r in rows} == {p["voucher"] for p in acc["posted"]}
    for key in {r["entry"] for r in rows}:
        lines = [r for r in rows if r["entry"] == key]
        assert sum(Decimal(r["debit"]) for r in lines) == sum(Decimal(r["credit"]) for r in lines) > 0
    assert {r["kind"] for r in rows if r["voucher"] == "NC1-101"} == {"return"}
    if report["kept"]:
        from syscafe_sync.caja.catalog import read_catalog

        for caja in ("CAJA1", "CAJA2", "CAJA3"):
            view = read_catalog(Path(report["cajas_root"]) / caja, "products")
            assert "ALM-EJ" in view.records and len(view.records) == 17


def test_demo_registers_imports_and_explains(tmp_path):
    proc = run_cli(None, "demo", check=0, env={"TMPDIR": str(tmp_path)})
    out = proc.stdout
    assert "CAJA2 movements/2026-11-21/FV1-9001.json: code FV1 belongs to caja CAJA1" in out
    assert "not valid JSON" in out and "look further:" in out
    assert "2026-11-21 CAJA3 FV3: mismatch: missing 2010" in out
    assert "finding: CAJA1 FV1-1014: payments add up to 32940.00, but total is 33040.00" in out
    home = out.split("syscafe-sync --home ", 1)[1].split(" ", 1)[0]
    listed = json.loads(run_cli(Path(home), "--json", "vouchers", "list", "--caja", "CAJA2", "--date", "2026-11-21", check=0).stdout)
    assert [v["status"] for v in listed["vouchers"]].count("voided") == 1
    log = run_cli(Path(home), "log", "--caja", "CAJA3", "--level", "warning", check=0).stdout
    assert "FV3-2015.json refused" in log


def test_demo_json_in_a_given_home(tmp_path):
    home = tmp_path / "demo-home"
    report = json.loads(run_cli(home, "--json", "demo", check=0).stdout)
    assert report["home"] == str(home)
    _check_report(report)
    again = run_cli(home, "demo", check=2)
    assert "already has cajas named CAJA1, CAJA2, CAJA3" in again.stderr


@pytest.mark.slow
def test_demo_works_from_an_installed_package_outside_the_checkout(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("SYSCAFE_SYNC_HOME", None)
    where = subprocess.run([sys.executable, "-c", "import syscafe_sync; print(syscafe_sync.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(target)), where
    proc = subprocess.run([sys.executable, "-m", "syscafe_sync", "--json", "demo"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    _check_report(json.loads(proc.stdout))
