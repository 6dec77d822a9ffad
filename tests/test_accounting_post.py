"""`accounting post / retry` on a real database: posted once, held whole, reversed when voided or changed
after posting, summarised per day, status per voucher in `vouchers list` and the log; the doctor check."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import DAY, MAPPING, write_config

from syscafe_sync import config as config_mod
from syscafe_sync import doctor, importer, vouchers
from syscafe_sync.accounting import journal, mapping
from syscafe_sync.db.models import JournalEntry, SyncLog
from syscafe_sync.errors import UsageError

def exported(result: journal.PostResult) -> list[dict]:
    return json.loads(Path(result.file).read_text("utf-8"))["entries"] if result.file else []


def status(name: str) -> tuple[str, str | None]:
    code, number = name.split("-")
    row = next(v for v in vouchers.list_vouchers(code=code) if v["number"] == int(number))
    return row["accounting"], row["accounting_reason"]


def balanced(entry: dict) -> bool:
    return sum(Decimal(x["debit"]) for x in entry["lines"]) == sum(Decimal(x["credit"]) for x in entry["lines"]) == Decimal(entry["total"])


def test_each_voucher_is_posted_once_balanced_and_shows_posted(cfg, books):
    assert status("FV1-1") == ("pending", None)
    first = journal.post(cfg, to="json")
    entries = exported(first)
    assert [e["key"] for e in entries] == ["CAJA1:FV1:1:1", "CAJA1:FV1:2:1", "CAJA2:FV2:1:1"]
    assert all(balanced(e) for e in entries)
    fv12 = entries[1]
    assert {(x["account"], x["debit"], x["credit"]) for x in fv12["lines"]} == {
        ("41400501", "0.00", "28800.00"), ("41352401", "0.00", "4000.00"), ("249505", "0.00", "2304.00"),
        ("24080501", "0.00", "760.00"), ("110505", "20000.00", "0.00"), ("11100501", "15864.00", "0.00")}
    assert {x["third_party"] for x in fv12["lines"]} == {"222222222222"} and {x["cost_centre"] for x in fv12["lines"]} == {"CC-01"}
    assert status("FV1-1") == ("posted", None) and status("FV2-1") == ("posted", None)
    again = journal.post(cfg, to="json")
    assert again.file is None and again.posted == [] and JournalEntry.select().count() == 3
    logged = [r.message for r in SyncLog.select().where((SyncLog.action == "accounting post") & (SyncLog.caja == "CAJA1"))]
    assert logged == ["2 vouchers posted to json: FV1-1, FV1-2"]


def test_a_voucher_with_a_missing_mapping_is_held_whole_then_posted_by_retry(cfg, books, tmp_path):
    c1, _ = books
    c1.add(3, payments=[("DAVIPLATA", "35864.00")])
    importer.import_day(cfg, ["CAJA1"], DAY, "skip")
    result = journal.post(cfg, to="json")
    assert result.outcome == "failed"
    assert [(h["voucher"], h["reason"]) for h in result.held] == [
        ("FV1-3", "no account for payment method DAVIPLATA (payment_methods.DAVIPLATA)")]
    assert "CAJA1:FV1:3:1" not in {e["key"] for e in exported(result)}  # nothing of it, not even its income
    assert status("FV1-3") == ("held", "no account for payment method DAVIPLATA (payment_methods.DAVIPLATA)")
    warning = SyncLog.select().where(SyncLog.outcome == "held").get()
    assert warning.caja == "CAJA1" and "FV1-3" in warning.message and "DAVIPLATA" in warning.message
    # a plain post does not retry it; retry does, once the mapping has it
    assert journal.post(cfg, to="json").held == []
    (tmp_path / "map.toml").write_text(MAPPING.replace('NEQUI = "11100501"', 'NEQUI = "11100501"\nDAVIPLATA = "11100502"'), encoding="utf-8")
    mapping.load(tmp_path / "map.toml")
    retried = journal.post(cfg, to="json", retry=True)
    assert [e["key"] for e in exported(retried)] == ["CAJA1:FV1:3:1"] and status("FV1-3") == ("posted", None)


def test_voided_after_posting_is_reversed_and_a_change_is_reversed_then_posted_again(cfg, books):
    c1, _ = books
    first = {e["key"]: e for e in exported(journal.post(cfg, to="json"))}
    c1.add(1, status="voided")
    c1.add(2, payments=[("EF", "35864.00")])  # paid otherwise: the books change
    importer.import_day(cfg, ["CAJA1"], DAY, "overwrite")
    assert status("FV1-1")[0] == "pending" and "changed by an import" in status("FV1-1")[1]
    second = {e["key"]: e for e in exported(journal.post(cfg, to="json"))}
    assert sorted(second) == ["CAJA1:FV1:1:2", "CAJA1:FV1:2:2", "CAJA1:FV1:2:3"]
    reversal = second["CAJA1:FV1:1:2"]
    assert reversal["kind"] == "reversal"
    assert [(x["account"], x["debit"], x["credit"]) for x in reversal["lines"]] == \
           [(x["account"], x["credit"], x["debit"]) for x in first["CAJA1:FV1:1:1"]["lines"]]
    assert second["CAJA1:FV1:2:2"]["kind"] == "reversal" and second["CAJA1:FV1:2:3"]["kind"] == "sale"
    assert {x["account"] for x in second["CAJA1:FV1:2:3"]["lines"] if x["debit"] != "0.00"} == {"110505"}
    assert all(balanced(e) for e in second.values())
    assert status("FV1-1") == ("posted", None) and status("FV1-2") == ("posted", None)
    # a rewrite that does not touch the books (another seller) posts nothing
    c1.add(2, payments=[("EF", "35864.00")], seller="V04")
    importer.import_day(cfg, ["CAJA1"], DAY, "overwrite")
    third = journal.post(cfg, to="json")
    assert third.file is None and third.unchanged == ["FV1-2"] and status("FV1-2") == ("posted", None)


def test_a_voucher_voided_before_posting_posts_nothing(cfg, books):
    c1, _ = books
    c1.add(4, status="voided")
    importer.import_day(cfg, ["CAJA1"], DAY, "skip")
    result = journal.post(cfg, to="json")
    assert "CAJA1:FV1:4:1" not in {e["key"] for e in exported(result)} and "FV1-4" in result.unchanged
    assert status("FV1-4") == ("posted", "voided before it was posted: nothing to post")


def test_a_credit_note_reverses_what_it_returns(cfg, books):
    c1, _ = books
    c1.add(1, code="NC1", kind="credit_note", references=[{"code": "FV1", "number": 1}],
           lines=[{"product": "GAS-400", "description": "Gaseosa", "quantity": "1", "unit_price": "4000.00",
                   "taxes": [{"type": "IVA", "rate": "19"}]}])
    importer.import_day(cfg, ["CAJA1"], DAY, "skip")
    note = next(e for e in exported(journal.post(cfg, to="json")) if e["voucher"] == "NC1-1")
    assert note["kind"] == "return" and balanced(note)
    assert {(x["account"], x["debit"], x["credit"]) for x in note["lines"]} == {
        ("41352401", "4000.00", "0.00"), ("24080501", "760.00", "0.00"), ("110505", "0.00", "4760.00")}


def test_an_adjustment_note_reverses_what_it_cancels_to_the_cent(cfg, books):
    c1, _ = books
    # FV1-2 (paid EF and NEQUI) cancelled whole by an adjustment note carrying its lines and payments
    c1.add(1, code="NC1", kind="adjustment_note", references=[{"code": "FV1", "number": 2}],
           payments=[("EF", "20000.00"), ("NEQUI", "15864.00")])
    importer.import_day(cfg, ["CAJA1"], DAY, "skip")
    by_voucher = {e["voucher"]: e for e in exported(journal.post(cfg, to="json"))}
    sale, note = by_voucher["FV1-2"], by_voucher["NC1-1"]
    assert note["kind"] == "return" and balanced(note) and note["total"] == sale["total"] == "35864.00"
    # line for line the sale's, debit and credit swapped: each payment account credited, income and taxes debited
    sides = lambda e: sorted((x["account"], x["cost_centre"], x["third_party"], x["debit"], x["credit"]) for x in e["lines"])  # noqa: E731
    assert sides(note) == sorted((a, cc, t, cr, dr) for a, cc, t, dr, cr in sides(sale))
    assert {(x["account"], x["credit"]) for x in note["lines"] if x["credit"] != "0.00"} == {("110505", "20000.00"), ("11100501", "15864.00")}
    # together they leave every account as it was, to the cent
    net = defaultdict(Decimal)
    for e in (sale, note):
        for x in e["lines"]:
            net[x["account"]] += Decimal(x["debit"]) - Decimal(x["credit"])
    assert len(net) == 6 and set(net.values()) == {Decimal("0.00")}
    assert status("NC1-1") == ("posted", None)


def test_per_day_one_balanced_summary_per_caja_and_day(cfg, books):
    result = journal.post(cfg, per="day", to="csv")
    rows = Path(result.file).read_text("utf-8").splitlines()
    assert rows[0] == "entry,date,caja,per,kind,voucher,line,account,cost_centre,third_party,description,debit,credit"
    keys = {r.split(",")[0] for r in rows[1:]}
    assert keys == {f"CAJA1:{DAY}:day:1", f"CAJA2:{DAY}:day:1"}
    caja1 = [r.split(",") for r in rows[1:] if r.startswith("CAJA1:")]
    assert caja1[0][5] == "FV1-1 FV1-2"
    assert sum(Decimal(r[11]) for r in caja1) == sum(Decimal(r[12]) for r in caja1) == Decimal("71728.00")
    assert len({r[7] for r in caja1}) == len(caja1)  # one line per account
    assert status("FV1-1") == ("posted", None) and journal.post(cfg, per="day", to="csv").file is None


def test_refusals_change_nothing(cfg, books):
    with pytest.raises(UsageError, match="no voucher of caja 'CAJA9'"):
        journal.post(cfg, caja="CAJA9", to="json")
    with pytest.raises(UsageError, match="accounting.url"):
        journal.post(cfg, to="http")
    write_config(cfg.home, accounting={"url": "http://127.0.0.1:9/x"})
    from syscafe_sync import config as config_mod

    with pytest.raises(UsageError, match="SYSCAFE_SYNC_ACCOUNTING_TOKEN"):
        journal.post(config_mod.load(cfg.home), to="http")
    assert JournalEntry.select().count() == 0 and status("FV1-1") == ("pending", None)


def test_a_bad_mapping_file_is_refused_whole(cfg, books, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(MAPPING + '\n[taxes2]\nX = "1"\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"unknown section \[taxes2\]"):
        mapping.load(bad)
    bad.write_text('[taxes]\n"IVA diecinueve" = "2408"\n', encoding="utf-8")
    with pytest.raises(UsageError, match='must be written TYPE RATE, e.g. "IVA 19"'):
        mapping.load(bad)
    assert len(mapping.current().rows()) == 9  # the loaded one stays
    csv = tmp_path / "map.csv"
    csv.write_text("kind,key,value\npayment_method,EF,110505\ntax,IVA 19.00,24080501\n", encoding="utf-8")
    assert mapping.load(csv)["rows"] == 2 and mapping.current().tax == {"IVA 19": "24080501"}


def test_doctor_fails_naming_what_the_mapping_misses_and_passes_when_covered(cfg, books, tmp_path):
    c1, _ = books
    check = {c.check: c for c in doctor.run(cfg)}["accounting mapping"]
    assert check.status == "ok"
    c1.add(5, payments=[("TD", "35864.00")])
    c1.add(6, lines=[{"product": "CAF-500", "description": "Café", "quantity": "1", "unit_price": "20000.00",
                      "taxes": [{"type": "IVA", "rate": "5"}]}])
    importer.import_day(cfg, ["CAJA1"], DAY, "skip")
    check = {c.check: c for c in doctor.run(cfg)}["accounting mapping"]
    assert check.status == "fail"
    assert check.message == "in use but not mapped: payment method TD; tax IVA 5; group CAFE-GRANO"
    assert "accounting map load" in check.fix and "accounting retry" in check.fix
    (tmp_path / "map.toml").write_text(MAPPING.replace("[taxes]", '[taxes]\n"IVA 5" = "24080502"')
                                       .replace("[groups]", '[groups]\nCAFE-GRANO = "41352402"')
                                       .replace('EF = "110505"', 'EF = "110505"\nTD = "11100501"'), encoding="utf-8")
    mapping.load(tmp_path / "map.toml")
    assert {c.check: c for c in doctor.run(cfg)}["accounting mapping"].status == "ok"


def test_doctor_only_warns_when_accounting_is_not_set_up(cfg, two):
    check = {c.check: c for c in doctor.run(cfg)}["accounting mapping"]
    assert check.status == "warn" and "accounting map load" in check.fix


def test_retry_sends_the_entries_failed_on_another_destination_to_the_one_asked_for(cfg, books, tmp_path):
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    write_config(cfg.home, accounting={"export_dir": str(tmp_path / "afile" / "sub")})
    failed = journal.post(config_mod.load(cfg.home), to="csv")
    assert failed.outcome == "failed" and {e["state"] for e in failed.entries} == {"failed"}
    write_config(cfg.home, accounting={"export_dir": str(tmp_path / "exports")})
    retried = journal.post(config_mod.load(cfg.home), to="json", retry=True)
    assert retried.outcome == "ok" and retried.file.endswith(".json")
    assert [e["key"] for e in exported(retried)] == ["CAJA1:FV1:1:1", "CAJA1:FV1:2:1", "CAJA2:FV2:1:1"]
    assert {status(n) for n in ("FV1-1", "FV1-2", "FV2-1")} == {("posted", None)}
    assert {(e.destination, e.state) for e in JournalEntry.select()} == {("json", "delivered")}
    # delivered once: nothing goes again, to either destination
    assert journal.post(config_mod.load(cfg.home), to="csv", retry=True).entries == []
