"""The accounting commands through the real program: exit codes, output, refusals logged."""

from __future__ import annotations

import csv
import json
from decimal import Decimal

from conftest import MAPPING, cli_json, run_cli, write_config


def test_map_post_list_export_and_retry_through_the_program(home, books, tmp_path):
    c1, _ = books
    c1.add(3, payments=[("DAVIPLATA", "35864.00")])
    run_cli(home, "import", "--date", "2026-11-22", check=0)
    shown = cli_json(home, "accounting", "map", "show")["mapping"]
    assert {"kind": "tax", "key": "IVA 19", "value": "24080501"} in shown
    post = run_cli(home, "accounting", "post", "--date", "2026-11-22", "--to", "csv", check=1)
    assert "3 vouchers posted, 0 unchanged, 1 held" in post.stdout
    assert "held FV1-3 (CAJA1 2026-11-22): no account for payment method DAVIPLATA" in post.stdout
    listed = {f"{v['code']}-{v['number']}": v for v in cli_json(home, "vouchers", "list")["vouchers"]}
    assert {k: v["accounting"] for k, v in listed.items()} == {"FV1-1": "posted", "FV1-2": "posted", "FV1-3": "held", "FV2-1": "posted"}
    assert {"caja", "code", "number", "date", "status", "total", "findings"} <= set(listed["FV1-3"])
    text = run_cli(home, "vouchers", "list", "--caja", "CAJA1", check=0).stdout
    assert "held: no account for payment method DAVIPLATA" in text
    assert "accounting: held (no account for payment method DAVIPLATA" in run_cli(home, "vouchers", "show", "FV1-3", check=0).stdout
    (tmp_path / "map.toml").write_text(MAPPING.replace("[taxes]", 'DAVIPLATA = "11100502"\n\n[taxes]'), encoding="utf-8")
    run_cli(home, "accounting", "map", "load", str(tmp_path / "map.toml"), check=0)
    retried = cli_json(home, "accounting", "retry")
    assert [p["voucher"] for p in retried["posted"]] == ["FV1-3"] and retried["held"] == []
    out = tmp_path / "all.csv"
    assert cli_json(home, "accounting", "export", "--format", "csv", "--out", str(out))["entries"] == 4
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert sum(Decimal(r["debit"]) for r in rows) == sum(Decimal(r["credit"]) for r in rows) == Decimal("35864.00") * 4
    doc = json.loads(run_cli(home, "--json", "accounting", "export", "--format", "json", "--out", str(tmp_path / "a.json"), check=0).stdout)
    assert json.loads((tmp_path / "a.json").read_text("utf-8"))["format"] == 1 and doc["format"] == "json"


def test_bad_input_exits_2_changes_nothing_and_is_logged(home, books, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,key,value\npayment_method,EF,110505\nmethod,NEQUI,1110\n", encoding="utf-8")
    proc = run_cli(home, "accounting", "map", "load", str(bad), check=2)
    assert "line 3: kind 'method' is not one of payment_method, tax, group, caja, account" in proc.stderr
    assert len(cli_json(home, "accounting", "map", "show")["mapping"]) == 9
    missing = run_cli(home, "accounting", "map", "load", str(tmp_path / "nope.toml"), check=2)
    assert "does not exist" in missing.stderr
    wrong = run_cli(home, "accounting", "post", "--per", "week", check=2)
    assert "'week' is not one of 'voucher', 'day'" in wrong.stderr
    log = run_cli(home, "log", "--level", "warning", check=0).stdout
    assert "kind 'method' is not one of" in log and "week" in log
    assert {v["accounting"] for v in cli_json(home, "vouchers", "list")["vouchers"]} == {"pending"}


def test_post_refuses_without_a_mapping(home, two):
    proc = run_cli(home, "accounting", "post", check=2)
    assert "no accounting mapping is loaded" in proc.stderr and "accounting map load FILE" in proc.stderr


def test_post_to_an_export_dir_under_a_file_fails_the_entries_logs_the_run_and_retry_delivers(home, books, tmp_path):
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    write_config(home, accounting={"export_dir": str(tmp_path / "afile" / "sub")})
    post = run_cli(home, "accounting", "post", "--to", "csv", check=1)
    assert "unexpected" not in post.stderr and "3 failed" in post.stdout
    listed = cli_json(home, "vouchers", "list")["vouchers"]
    assert {v["accounting"] for v in listed} == {"failed"}
    reason = listed[0]["accounting_reason"]
    assert f"{tmp_path / 'afile'} is a file, not a folder" in reason and "set accounting.export_dir" in reason
    logged = run_cli(home, "log", "--action", "accounting post", check=0).stdout
    assert "3 failed" in logged and "is a file, not a folder" in logged
    write_config(home, accounting={"export_dir": str(tmp_path / "exports")})
    retried = cli_json(home, "accounting", "retry", "--to", "csv")
    assert len(retried["posted"]) == 3 and retried["file"].startswith(str(tmp_path / "exports"))


def test_export_to_a_path_that_cannot_be_written_is_refused_naming_it_exit_2_and_logged(home, books, tmp_path):
    run_cli(home, "accounting", "post", "--to", "csv", check=0)
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    for out in (tmp_path / "afile" / "all.csv", tmp_path / "afile" / "deeper" / "all.csv"):
        proc = run_cli(home, "accounting", "export", "--format", "csv", "--out", str(out), check=2)
        assert f"cannot write {out}: {tmp_path / 'afile'} is a file, not a folder; give --out a file in a folder" in proc.stderr
        assert "unexpected" not in proc.stderr
    assert "is a file, not a folder; give --out" in run_cli(home, "log", "--level", "warning", check=0).stdout
    # a folder that is not there yet is made
    made = tmp_path / "new" / "folder" / "all.csv"
    assert cli_json(home, "accounting", "export", "--format", "csv", "--out", str(made))["entries"] == 3 and made.is_file()
