"""Voucher import through the core API: both modes, every refusal of SPEC, isolation of cajas."""

from __future__ import annotations

import json
import os

import pytest
from conftest import DAY, voucher, write_config

from syscafe_sync import config as config_mod
from syscafe_sync import importer, registry, vouchers
from syscafe_sync.db.models import Refusal, SyncLog, Voucher, VoucherLine, VoucherPayment, VoucherTax
from syscafe_sync.lease import CajaLease

pytestmark = pytest.mark.both_roots  # each test on local folders and on smb:// roots (conftest.py)


def run(cfg, mode="skip", *names):
    result = importer.import_day(cfg, list(names), DAY, mode)
    return {r.caja: r for r in result.results}


def test_skip_imports_new_vouchers_with_lines_taxes_and_payments_in_columns(cfg, two):
    c1, c2 = two
    c1.add_many(1, 3)
    c2.add(10, payments=[("EF", "30000.00"), ("NEQUI", "5864.00")])
    res = run(cfg)
    assert (res["CAJA1"].imported, res["CAJA2"].imported) == (3, 1)
    v = Voucher.get((Voucher.code == "FV2") & (Voucher.number == 10))
    assert (v.caja, v.day, v.status, str(v.total)) == ("CAJA2", "2026-11-22", "active", "35864.00")
    assert [str(line.base) for line in VoucherLine.select().where(VoucherLine.voucher == v).order_by(VoucherLine.line_no)] == ["28800.00", "4000.00"]
    assert sorted((t.type, str(t.amount)) for t in VoucherTax.select().where(VoucherTax.voucher == v)) == [("INC", "2304.00"), ("IVA", "760.00")]
    assert [(p.method, str(p.amount)) for p in VoucherPayment.select().where(VoucherPayment.voucher == v).order_by(VoucherPayment.line_no)] == [("EF", "30000.00"), ("NEQUI", "5864.00")]
    assert json.loads(v.document) == json.loads((c2.day_folder() / "FV2-10.json").read_text())


def test_skip_rerun_reads_no_voucher_file_again(cfg, two):
    c1, _ = two
    c1.add_many(1, 5)
    run(cfg)
    # Garbage in an imported file: skip mode must not even open it.
    (c1.day_folder() / "FV1-3.json").write_text("not json at all")
    res = run(cfg)["CAJA1"]
    assert (res.imported, res.skipped, res.refused) == (0, 5, 0)


def test_overwrite_updates_changed_vouchers_only(cfg, two):
    c1, _ = two
    c1.add_many(1, 3)
    run(cfg)
    before = {v.number: v.updated_at for v in Voucher.select()}
    c1.add(2, status="voided")
    res = run(cfg, "overwrite")["CAJA1"]
    assert (res.imported, res.updated, res.skipped) == (0, 1, 2)
    after = {v.number: (v.status, v.updated_at) for v in Voucher.select()}
    assert after[2][0] == "voided" and after[2][1] > before[2]
    assert after[1][1] == before[1] and after[3][1] == before[3]
    assert VoucherLine.select().join(Voucher).where(Voucher.number == 2).count() == 2


def test_skip_does_not_update_a_changed_voucher_overwrite_does(cfg, two):
    c1, _ = two
    c1.add(1)
    run(cfg)
    c1.add(1, status="voided")
    assert run(cfg)["CAJA1"].skipped == 1
    assert Voucher.get().status == "active"
    assert run(cfg, "overwrite")["CAJA1"].updated == 1
    assert Voucher.get().status == "voided"


def test_zero_padded_file_names_are_read(cfg, two):
    c1, _ = two
    c1.writer.write_voucher(voucher("CAJA1", "FV1", 7), DAY, pad=6)
    assert (c1.day_folder() / "FV1-000007.json").exists()
    assert run(cfg)["CAJA1"].imported == 1


def test_temp_and_hidden_names_are_ignored_and_unknown_names_logged_once(cfg, two):
    c1, _ = two
    c1.add(1)
    c1.raw(f"movements/{DAY}/.FV1-2.json.tmp", "{half")
    c1.raw(f"movements/{DAY}/FV1-3.json.tmp", "{half")
    c1.raw(f"movements/{DAY}/notes.txt", "hello")
    res = run(cfg)["CAJA1"]
    assert (res.imported, res.refused) == (1, 0)
    run(cfg)
    log = (cfg.log_path).read_text().splitlines()
    assert sum("notes.txt ignored" in line for line in log) == 1


def _refusal(cfg, c1, name: str, content: bytes | str | dict) -> str:
    if isinstance(content, dict):
        content = json.dumps(content)
    c1.add(1)
    c1.raw(f"movements/{DAY}/{name}", content)
    res = run(cfg)["CAJA1"]
    assert res.imported == 1, "the rest of the day is imported"
    assert res.refused == 1
    [r] = res.refusals
    assert r["path"] == f"movements/{DAY}/{name}"
    row = Refusal.get(Refusal.path == r["path"])
    assert row.reason == r["reason"] and row.resolved_at is None
    logged = SyncLog.select().where((SyncLog.outcome == "refused") & (SyncLog.caja == "CAJA1")).get()
    assert name in logged.message and r["reason"] in logged.message
    return r["reason"]


def _doc(**changes):
    doc = voucher("CAJA1", "FV1", 2)
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("FV1-2.json", b"\xff\xfe not utf-8", "not UTF-8"),
        ("FV1-2.json", '{"format": 1, "caja": ', "not valid JSON"),
        ("FV1-2.json", "[1, 2]", "must be a JSON object"),
        ("FV1-2.json", _doc(issued_at=None), "issued_at is missing"),
        ("FV1-2.json", _doc(number="2"), "number must be a whole number"),
        ("FV1-2.json", _doc(status="open"), "status"),
        ("FV1-2.json", _doc(lines=None), "lines is missing"),
        ("FV1-2.json", _doc(totals={"total": 52104.0}), "totals.total must be a decimal string"),
        ("FV1-2.json", _doc(totals={"total": "52.104,00"}), "totals.total = \"52.104,00\" is not a decimal number"),
        ("FV1-2.json", _doc(issued_at="2026-11-22T14:42:10"), "has no UTC offset"),
        ("FV1-2.json", _doc(format=2), "format 2 is not supported"),
        ("FV1-9.json", _doc(), "its name says FV1-9 but the voucher inside is FV1-2"),
        ("FV1-2.json", _doc(caja="CAJA9"), "the voucher says caja 'CAJA9'"),
        ("FV7-2.json", _doc(code="FV7"), "code FV7 is not registered to any caja"),
    ],
)
def test_each_refusal_quarantines_the_file_with_its_reason(cfg, two, name, content, expected):
    reason = _refusal(cfg, two[0], name, content)
    assert expected in reason


def test_a_bad_line_decimal_is_refused_naming_the_field(cfg, two):
    doc = _doc()
    doc["lines"][1]["unit_price"] = "cuatro mil"
    assert "lines[1].unit_price" in _refusal(cfg, two[0], "FV1-2.json", doc)


def test_a_file_over_the_size_limit_is_refused_without_reading_it(home, caja_folder):
    write_config(home, limits={"max_file_bytes": 2000})
    cfg = config_mod.load(home)
    c1 = caja_folder("CAJA1")
    registry.add("CAJA1", c1.url)
    doc = _doc()
    doc["lines"][0]["description"] = "x" * 3000
    assert "over the limit of 2000" in _refusal(cfg, c1, "FV1-2.json", doc)


@pytest.mark.local_only("a link on the share's disk that leads outside it is hidden by Samba itself (wide links = no): "
                        "an smb:// listing never shows it, so there is nothing for syscafe-sync to refuse")
def test_a_link_leading_outside_the_root_is_refused(cfg, two, tmp_path):
    c1, _ = two
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(_doc()))
    c1.add(1)
    os.symlink(secret, c1.day_folder() / "FV1-2.json")
    res = run(cfg)["CAJA1"]
    assert res.refusals[0]["reason"] == "it is a link that leads outside the caja root"
    assert Voucher.select().count() == 1


def test_another_cajas_code_never_overwrites_its_voucher(cfg, two):
    c1, c2 = two
    c1.add(5)
    run(cfg)
    original = Voucher.get().document
    forged = voucher("CAJA2", "FV1", 5, status="voided")
    c2.raw(f"movements/{DAY}/FV1-5.json", json.dumps(forged))
    copied = voucher("CAJA1", "FV1", 6)
    c2.raw(f"movements/{DAY}/FV1-6.json", json.dumps(copied))
    for mode in ("skip", "overwrite"):
        res = run(cfg, mode)["CAJA2"]
        reasons = sorted(r["reason"] for r in res.refusals)
        assert reasons == [
            "code FV1 belongs to caja CAJA1, not CAJA2; it is never imported from here",
            "the voucher says caja 'CAJA1', but it is in the folder of caja CAJA2",
        ]
    assert Voucher.select().count() == 1
    assert Voucher.get().document == original and Voucher.get().caja == "CAJA1"


def test_a_refused_file_is_retried_and_imported_once_fixed(cfg, two):
    c1, _ = two
    c1.raw(f"movements/{DAY}/FV1-1.json", "{broken")

    def refusals_logged():
        return [r.message for r in SyncLog.select().where((SyncLog.outcome == "refused") & (SyncLog.caja == "CAJA1")).order_by(SyncLog.id)]

    assert run(cfg)["CAJA1"].refused == 1
    again = run(cfg)["CAJA1"]
    assert again.refused == 1 and again.refusals[0]["path"] == f"movements/{DAY}/FV1-1.json"
    assert Refusal.get().attempts == 2
    # logged when first refused, not on each of the passes that find it as it was (every few minutes for days)
    assert len(refusals_logged()) == 1
    assert again.message == f"{DAY}: 0 imported, 0 updated, 0 skipped, 1 refused (1 unchanged since first refused and logged)"
    # changed, and still bad for another reason: a new refusal, logged
    c1.raw(f"movements/{DAY}/FV1-1.json", "[1, 2]")
    run(cfg)
    assert len(refusals_logged()) == 2 and "must be a JSON object" in refusals_logged()[-1]
    # changed, the same reason: the file is not what was logged, so logged again
    c1.raw(f"movements/{DAY}/FV1-1.json", "[1, 2, 3]")
    run(cfg)
    assert len(refusals_logged()) == 3
    assert Refusal.get().attempts == 4
    c1.add(1)
    res = run(cfg)["CAJA1"]
    assert (res.imported, res.refused) == (1, 0)
    assert Refusal.get().resolved_at is not None
    assert vouchers.refused() == []


def test_an_unreachable_caja_is_reported_and_the_others_served(cfg, two):
    c1, c2 = two
    c1.add(1)
    c2.add(1)
    registry.edit("CAJA1", root=c1.url + "-gone")  # a folder beside it that does not exist
    res = run(cfg)
    assert res["CAJA1"].outcome == "unreachable" and "did not answer" in res["CAJA1"].message
    assert (res["CAJA2"].outcome, res["CAJA2"].imported) == ("ok", 1)
    assert importer.ImportResult(DAY, "skip", list(res.values())).failed


def test_a_caja_held_by_another_run_is_busy(home, caja_folder):
    write_config(home, limits={"lock_wait_s": 0.3})
    cfg = config_mod.load(home)
    c1 = caja_folder("CAJA1")
    registry.add("CAJA1", c1.url)
    c1.add(1)
    other = CajaLease("caja:CAJA1", 60, holder="someone-else")
    assert other.try_acquire()
    res = run(cfg)["CAJA1"]
    assert res.outcome == "busy" and f"process {os.getpid()}" in res.message
    other.release()
    assert run(cfg)["CAJA1"].imported == 1


def test_a_caja_that_takes_too_long_is_cut_off_and_the_next_pass_finishes(home, caja_folder):
    write_config(home, limits={"caja_timeout_s": 0.05, "batch_size": 50})
    c1 = caja_folder("CAJA1")
    registry.add("CAJA1", c1.url)
    c1.add_many(1, 1500)
    res = run(config_mod.load(home))["CAJA1"]
    assert res.outcome == "failed" and "cut off after 0.05 s" in res.message
    kept = Voucher.select().count()
    assert kept < 1500
    write_config(home, limits={})
    res = run(config_mod.load(home))["CAJA1"]
    assert res.outcome == "ok" and res.imported + kept == 1500 and Voucher.select().count() == 1500


def test_findings_are_kept_with_the_voucher(cfg, two):
    c1, _ = two
    doc = voucher("CAJA1", "FV1", 1)
    doc["totals"]["total"] = "99999.00"
    c1.raw(f"movements/{DAY}/FV1-1.json", json.dumps(doc))
    run(cfg)
    [listed] = vouchers.list_vouchers()
    kinds = sorted(f["kind"] for f in listed["findings"])
    assert kinds == ["payments", "totals"]


def test_a_voucher_already_imported_from_another_days_folder_is_not_doubled(cfg, two):
    import datetime as dt

    c1, _ = two
    c1.add(1)
    run(cfg)
    other_day = DAY + dt.timedelta(days=1)
    c1.writer.write_voucher(voucher("CAJA1", "FV1", 1), other_day)
    res = importer.import_day(cfg, [], other_day, "skip").results[0]
    assert (res.imported, res.skipped, res.refused) == (0, 1, 0)
    assert Voucher.select().count() == 1


def test_references_go_unchecked_only_around_the_import_s_own_transaction(cfg):
    """On SQLite the import's bulk insert skips the per-row foreign key search; outside it, and on
    PostgreSQL always, a line that names no voucher is refused."""
    from peewee import IntegrityError

    from conftest import pgtest
    from syscafe_sync.db import references_unchecked, write_transaction

    class Undo(Exception):
        pass

    orphan = {"voucher": 987654, "line_no": 0}
    if pgtest.mode() == "sqlite":
        with pytest.raises(Undo):
            with references_unchecked(), write_transaction():
                VoucherLine.insert(**orphan).execute()  # taken: the import only writes lines of its own vouchers
                raise Undo()
    with pytest.raises(IntegrityError):
        with write_transaction():
            VoucherLine.insert(**orphan).execute()
    assert VoucherLine.select().count() == 0
