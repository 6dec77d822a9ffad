"""Proof of completeness (SPEC "Findings", "The day summary", `audit`, `resolution`): every finding with a
voucher that has it and one that does not, gaps across days, every audit status, and doctor's numbering checks."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from conftest import BOGOTA, DAY, cli_json, run_cli, voucher

from syscafe_sync import audit, doctor, importer, resolutions
from syscafe_sync.caja import make_closing
from syscafe_sync.db import migrations
from syscafe_sync.db.models import SchemaVersion, SyncLog, Voucher


def imported(cfg, day=DAY):
    return {r.caja: r for r in importer.import_day(cfg, [], day, "skip").results}


def findings_of(code: str, number: int) -> list[dict]:
    return json.loads(Voucher.get((Voucher.code == code) & (Voucher.number == number)).findings)


def kinds_of(code: str, number: int) -> set[str]:
    return {f["kind"] for f in findings_of(code, number)}


# --- findings kept with the voucher ---------------------------------------------------------------

def _bad_line(doc):
    doc["lines"][0]["base"] = "1.00"


def _bad_tax(doc):
    doc["lines"][1]["taxes"][0]["amount"] = "1.00"


def _bad_total(doc):
    doc["totals"]["total"] = "1.00"
    doc["payments"] = [{"method": "EF", "amount": "1.00"}]


def _bad_payments(doc):
    doc["payments"] = [{"method": "EF", "amount": "1.00"}]


def _future(doc):
    doc["issued_at"] = (dt.datetime.now(BOGOTA) + dt.timedelta(hours=3)).isoformat(timespec="seconds")


def _other_day(doc):
    doc["issued_at"] = dt.datetime.combine(DAY - dt.timedelta(days=2), dt.time(10), BOGOTA).isoformat()


@pytest.mark.parametrize("spoil, kind, words", [
    (_bad_line, "line", "but base is 1.00"),
    (_bad_tax, "tax", "but amount is 1.00"),
    (_bad_total, "totals", "total is 1.00, but base + tax + tip"),
    (_bad_payments, "payments", "payments add up to 1.00"),
    (_future, "date", "is in the future"),
    (_other_day, "date", f"but it is in the folder of {DAY}"),
])
def test_each_finding_is_flagged_and_a_clean_voucher_is_not(cfg, two, spoil, kind, words):
    c1, _ = two
    c1.add(1)
    doc = voucher("CAJA1", "FV1", 2)
    spoil(doc)
    c1.raw(f"movements/{DAY}/FV1-2.json", json.dumps(doc))
    assert imported(cfg)["CAJA1"].imported == 2, "a finding never stops the import"
    assert findings_of("FV1", 1) == []
    assert kind in kinds_of("FV1", 2)
    assert any(words in f["message"] for f in findings_of("FV1", 2)), findings_of("FV1", 2)
    # SPEC: flagged, and logged; the clean voucher is not
    [logged] = SyncLog.select().where(SyncLog.outcome == "finding")
    assert (logged.caja, logged.level) == ("CAJA1", "warning")
    assert "FV1-2" in logged.message and words in logged.message
    assert imported(cfg)["CAJA1"].skipped == 2 and SyncLog.select().where(SyncLog.outcome == "finding").count() == 1, \
        "logged once, not on every pass"


def test_a_line_without_its_optional_base_or_tax_amount_does_not_make_the_totals_wrong(cfg, two):
    """Only `lines` and `totals.total` are required: the bases or taxes of some lines are no sum to hold
    totals.base or totals.tax against."""
    c1, _ = two
    no_base, no_amount, wrong = (voucher("CAJA1", "FV1", n) for n in (1, 2, 3))
    del no_base["lines"][1]["base"]
    del no_amount["lines"][1]["taxes"][0]["amount"]
    wrong["totals"]["base"] = "1.00"
    for doc in (no_base, no_amount, wrong):
        c1.raw(f"movements/{DAY}/FV1-{doc['number']}.json", json.dumps(doc))
    imported(cfg)
    assert findings_of("FV1", 1) == [] and findings_of("FV1", 2) == []
    assert any(f["message"].startswith("totals.base is 1.00, but the lines' bases add up to") for f in findings_of("FV1", 3))


def test_numbering_findings_follow_the_resolutions_and_are_checked_again_when_they_change(cfg, two):
    c1, _ = two
    resolutions.add("FV1", "POS1", 1, 100, dt.date(2026, 1, 1), dt.date(2026, 12, 31), "18764000001", tz=BOGOTA)
    c1.add(5)                                   # in range, valid, right prefix
    c1.add(150)                                 # outside the range
    c1.add(6, prefix="OTRO")                    # another prefix
    imported(cfg)
    assert findings_of("FV1", 5) == []
    [outside] = findings_of("FV1", 150)
    assert outside["kind"] == "numbering" and "outside the range of every resolution of FV1" in outside["message"]
    [prefix] = findings_of("FV1", 6)
    assert "has prefix OTRO, but resolution 18764000001" in prefix["message"] and "authorises POS1" in prefix["message"]
    # a second resolution covering 101–200 clears FV1-150 at once, without importing again
    second, _ = resolutions.add("FV1", "POS1", 101, 200, dt.date(2026, 6, 1), dt.date(2027, 6, 1), tz=BOGOTA)
    assert findings_of("FV1", 150) == []
    # the validity: a resolution that starts after the voucher was issued
    resolutions.remove(second.id, tz=BOGOTA)
    resolutions.add("FV1", "POS1", 101, 200, dt.date(2026, 12, 1), dt.date(2027, 6, 1), tz=BOGOTA)
    [late] = findings_of("FV1", 150)
    assert f"was issued on {DAY}, outside the validity of" in late["message"]
    # no resolution at all: no numbering findings (doctor says the resolution is missing)
    for r in resolutions.listing("FV1"):
        resolutions.remove(r["id"], tz=BOGOTA)
    assert findings_of("FV1", 150) == [] and findings_of("FV1", 6) == []


def test_dates_are_checked_on_the_company_calendar_whatever_offset_the_pos_writes(home, cfg, two):
    c1, _ = two
    utc = dt.timezone.utc
    evening = dt.datetime.combine(DAY, dt.time(21, 30), BOGOTA)     # 02:30 the next day in UTC
    late_before = dt.datetime.combine(DAY - dt.timedelta(days=1), dt.time(23, 30), BOGOTA)  # DAY 04:30 in UTC
    for number, issued in [(1, evening), (2, evening.astimezone(utc)), (3, late_before.astimezone(utc)),
                           (4, evening.astimezone(dt.timezone(dt.timedelta(hours=1))))]:
        c1.raw(f"movements/{DAY}/FV1-{number}.json", json.dumps(voucher("CAJA1", "FV1", number, issued=issued)))
    # a resolution that ends on DAY: the evening sale written in UTC is still within it
    resolutions.add("FV1", "POS1", 1, 100, dt.date(2026, 1, 1), DAY, tz=BOGOTA)
    imported(cfg)
    assert Voucher.get((Voucher.code == "FV1") & (Voucher.number == 2)).issued_at.endswith("+00:00"), "kept as the POS wrote it"
    listed = run_cli(home, "vouchers", "list", "--date", DAY.isoformat(), check=0).stdout
    issued = [line.split()[3] for line in listed.splitlines() if line.startswith("CAJA1 ")]
    assert issued == ["21:30:00", "21:30:00", "23:30:00", "21:30:00"], "the list shows the company's clock"
    assert findings_of("FV1", 1) == [] and findings_of("FV1", 2) == [] and findings_of("FV1", 4) == [], \
        "21:30 in Bogotá is DAY, written with any offset"
    [other_day] = [f for f in findings_of("FV1", 3) if f["kind"] == "date"]
    assert other_day["message"].startswith(f"issued on {DAY - dt.timedelta(days=1)} (") and f"folder of {DAY}" in other_day["message"]
    [outside] = [f for f in findings_of("FV1", 3) if f["kind"] == "numbering"] or [None]
    assert outside is None, "23:30 on the day before is inside the validity too"
    # checked again when a resolution changes, on the same calendar
    for r in resolutions.listing("FV1"):
        resolutions.remove(r["id"], tz=BOGOTA)
    resolutions.add("FV1", "POS1", 1, 100, DAY + dt.timedelta(days=1), dt.date(2027, 12, 31), tz=BOGOTA)
    assert {f["kind"] for f in findings_of("FV1", 2)} == {"numbering"}, "DAY in Bogotá is before a validity from DAY + 1"


def test_init_brings_the_other_day_findings_of_an_earlier_build_onto_the_company_calendar(home, cfg, two):
    """Builds before 2026-12-03 took the day in the offset the POS wrote, for the folder's day and for a
    resolution's validity; what they stored is corrected by the upgrade (`init`), and nothing else moves."""
    c1, _ = two
    evening_utc = dt.datetime.combine(DAY, dt.time(21, 30), BOGOTA).astimezone(dt.timezone.utc)  # DAY + 1 in UTC
    east = dt.datetime.combine(DAY - dt.timedelta(days=1), dt.time(20), BOGOTA).astimezone(dt.timezone(dt.timedelta(hours=1)))
    really_other = dt.datetime.combine(DAY - dt.timedelta(days=2), dt.time(10), BOGOTA)
    for number, issued in [(1, evening_utc), (2, east), (3, really_other)]:
        doc = voucher("CAJA1", "FV1", number, issued=issued)
        if number == 1:
            _bad_tax(doc)
        c1.raw(f"movements/{DAY}/FV1-{number}.json", json.dumps(doc))
    imported(cfg)
    resolutions.add("FV1", "POS1", 1, 100, dt.date(2026, 1, 1), DAY, tz=BOGOTA)  # valid until DAY, Bogotá's
    tax = findings_of("FV1", 1)
    assert {f["kind"] for f in tax} == {"tax", "totals"}, "on the company's calendar 21:30 is DAY: no date finding"
    # what the earlier build stored: FV1-1 flagged twice (its UTC date), FV1-2 not (its own date was DAY)
    old = {"kind": "date", "message": f"issued on {DAY + dt.timedelta(days=1)}, but it is in the folder of {DAY}"}
    old_validity = {"kind": "numbering", "message": f"FV1-1 was issued on {DAY + dt.timedelta(days=1)}, outside the validity of resolution #1"}
    Voucher.update(findings=json.dumps([old] + tax + [old_validity])).where(Voucher.number == 1).execute()
    Voucher.update(findings="[]").where(Voucher.number == 2).execute()
    SchemaVersion.delete().where(SchemaVersion.version == 11).execute()  # the schema that build left
    out = cli_json(home, "init")
    assert out["migrations"] == [migrations.CALENDAR_DAYS]
    assert findings_of("FV1", 1) == tax, "the false finding gone, the others kept in order"
    [east_day] = findings_of("FV1", 2)
    assert east_day["message"].startswith(f"issued on {DAY - dt.timedelta(days=1)} (")
    assert [f["kind"] for f in findings_of("FV1", 3)] == ["date"], "a voucher of another day stays flagged"
    logged = SyncLog.select().where(SyncLog.action == "init").order_by(SyncLog.id.desc()).first()
    assert logged.message.endswith("the day of 2 vouchers and the numbering of 1 checked again on the company's calendar")
    Voucher.update(findings=json.dumps([old] + tax)).where(Voucher.number == 1).execute()
    cli_json(home, "init")
    logged = SyncLog.select().where(SyncLog.action == "init").order_by(SyncLog.id.desc()).first()
    assert logged.message == "schema already up to date", "once, with the upgrade: not at every start of the service"
    assert findings_of("FV1", 1) == [old] + tax


def test_bad_resolutions_are_refused_with_exit_2_and_nothing_changed(home, two):
    ok = ["--prefix", "POS1", "--from", "1", "--to", "100", "--valid-from", "2026-01-01", "--valid-to", "2026-12-31"]
    run_cli(home, "resolution", "add", "FV1", *ok, check=0)
    for args, words in [
        (["FV1", "--prefix", "POS1", "--from", "50", "--to", "150", "--valid-from", "2026-01-01", "--valid-to", "2026-12-31"], "overlap"),
        (["FV1", "--prefix", "POS1", "--from", "300", "--to", "200", "--valid-from", "2026-01-01", "--valid-to", "2026-12-31"], "is not a range"),
        (["FV1", "--prefix", "POS1", "--from", "300", "--to", "400", "--valid-from", "2026-12-31", "--valid-to", "2026-01-01"], "is after --valid-to"),
        (["FV 1", *ok], "FV 1"),
    ]:
        proc = run_cli(home, "resolution", "add", *args)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert len(cli_json(home, "resolution", "list")["resolutions"]) == 1
    refused = SyncLog.select().where((SyncLog.action == "resolution add") & (SyncLog.outcome == "refused")).count()
    assert refused == 4
    assert run_cli(home, "resolution", "remove", "99").returncode == 2


def test_resolution_list_says_how_much_is_used_and_how_long_it_lasts(home, cfg, two):
    c1, _ = two
    c1.add_many(1, 9)
    imported(cfg)
    run_cli(home, "resolution", "add", "FV1", "--prefix", "POS1", "--from", "1", "--to", "10", "--valid-from", "2026-01-01",
            "--valid-to", "2099-12-31", "--number", "R-1", check=0)
    [r] = cli_json(home, "resolution", "list")["resolutions"]
    assert (r["code"], r["number"], r["highest_number"], r["used_percent"]) == ("FV1", "R-1", 9, 90.0)
    assert r["days_left"] > 0


# --- gaps -----------------------------------------------------------------------------------------

def test_gaps_are_reported_never_filled_and_continue_from_the_day_before(cfg, two):
    c1, _ = two
    before = DAY - dt.timedelta(days=1)
    for n in (1, 2, 3, 5):
        c1.add(n, day=before)
    for n in (8, 9, 11):
        c1.add(n, day=DAY)
    imported(cfg, before)
    imported(cfg, DAY)
    assert audit.gaps("FV1", before) == [4]
    # DAY continues from 5, the last number of the day before: 6 and 7 were lost at the turn of the day
    assert audit.gaps("FV1", DAY) == [6, 7, 10]
    assert audit.gaps("FV1") == [4, 6, 7, 10]
    assert Voucher.select().where(Voucher.code == "FV1").count() == 7, "reported, never filled"
    # the import logged them
    logged = SyncLog.select().where((SyncLog.action == "check") & (SyncLog.caja == "CAJA1")).order_by(SyncLog.id)
    assert [r.message for r in logged][-1] == f"{DAY}: numbers missing in FV1: 6–7, 10"
    # a voucher filed in the next day's folder is not missing
    c1.add(10, day=DAY + dt.timedelta(days=1))
    imported(cfg, DAY + dt.timedelta(days=1))
    assert audit.gaps("FV1", DAY) == [6, 7]
    # no gap: nothing reported
    for n in (4, 6, 7):
        c1.add(n, day=before)
    importer.import_day(cfg, [], before, "skip")
    assert audit.gaps("FV1") == [] and audit.gaps("FV1", DAY) == []


def test_gaps_count_only_the_numbers_the_resolutions_say_were_issued(cfg, two):
    c1, _ = two
    before = DAY - dt.timedelta(days=1)
    for n in (1, 2, 3, 5, 7):                   # resolution A: 1–10; 4 and 6 lost, 8–10 never used
        c1.add(n, day=before)
    imported(cfg, before)
    # with no resolution every number between is expected
    assert audit.gaps("FV1", before) == [4, 6]
    resolutions.add("FV1", "POS1", 1, 10, dt.date(2026, 1, 1), dt.date(2026, 12, 31), tz=BOGOTA)
    for n in (103, 104, 106):                   # the POS moved to resolution B, 101–200, and lost 105
        c1.add(n, day=DAY)
    imported(cfg, DAY)
    # Without B, 103 and up are outside every range: numbering findings, not expected numbers, and no
    # gap among them or between 7 and them but A's own unused end, 8–10 (the POS may have lost them).
    assert audit.gaps("FV1", DAY) == [8, 9, 10]
    assert kinds_of("FV1", 103) == {"numbering"}
    resolutions.add("FV1", "POS1", 101, 200, dt.date(2026, 11, 1), dt.date(2027, 10, 31), tz=BOGOTA)
    # B starts at 101: the POS's first two numbers there are missing; A's unused end and 11–100 are not
    assert audit.gaps("FV1", DAY) == [101, 102, 105]
    assert audit.gaps("FV1") == [4, 6, 101, 102, 105]
    logged = SyncLog.select().where((SyncLog.action == "check") & (SyncLog.caja == "CAJA1")).order_by(SyncLog.id.desc()).first()
    assert logged.message == f"{DAY}: numbers missing in FV1: 8–10", "the import logged what it saw then, before B"
    assert audit.check(DAY)["gaps"] == [{"caja": "CAJA1", "code": "FV1", "date": DAY.isoformat(), "missing": [101, 102, 105],
                                         "missing_count": 3}]
    # a resolution recorded but never used, between the two, is skipped whole
    resolutions.add("FV1", "POS1", 50, 60, dt.date(2026, 6, 1), dt.date(2026, 12, 31), tz=BOGOTA)
    assert audit.gaps("FV1") == [4, 6, 101, 102, 105]
    # the day audit without a closing names the same gaps
    [caja] = audit.audit(DAY, "CAJA1")["cajas"]
    assert caja["codes"]["FV1"]["status"] == "no_closing" and caja["codes"]["FV1"]["missing"] == [101, 102, 105]


def test_gaps_follow_the_resolutions_in_the_order_granted_when_a_new_one_starts_below_the_old(cfg, two):
    """DIAN may grant a code a new range below the one it leaves: the day of the switch and the days after
    still continue from the last number issued, in the new range, instead of waiting to pass the old one."""
    c1, _ = two
    before, after = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
    resolutions.add("FV1", "POS1", 1000, 5000, dt.date(2026, 1, 1), dt.date(2026, 12, 31), tz=BOGOTA)
    resolutions.add("FV1", "POS1", 1, 999, DAY, dt.date(2027, 11, 30), tz=BOGOTA)
    for n in (1000, 1001, 1003):                # the old range; 1002 lost
        c1.add(n, day=before)
    for n in (1004, 1, 2, 4):                   # the switch, mid-day; 3 lost in the new range
        c1.add(n, day=DAY)
    for n in (6, 7):                            # the day after, in the new range only; 5 lost at the turn of the day
        c1.add(n, day=after)
    for day in (before, DAY, after):
        imported(cfg, day)
    assert audit.gaps("FV1", before) == [1002]
    assert audit.gaps("FV1", DAY) == [3], "the old range's unused end (1005–5000) was never issued"
    assert audit.gaps("FV1", after) == [5]
    assert audit.gaps("FV1") == [1002, 3, 5], "in the order the numbers were issued"
    logged = SyncLog.select().where((SyncLog.action == "check") & (SyncLog.caja == "CAJA1")).order_by(SyncLog.id)
    assert [r.message for r in logged] == [f"{before}: numbers missing in FV1: 1002", f"{DAY}: numbers missing in FV1: 3",
                                           f"{after}: numbers missing in FV1: 5"]
    [caja] = audit.audit(after, "CAJA1")["cajas"]
    assert caja["codes"]["FV1"]["status"] == "no_closing" and caja["codes"]["FV1"]["missing"] == [5]
    # a number outside both ranges (a numbering finding) neither hides a gap nor makes one
    c1.add(7000, day=after)
    imported(cfg, after)
    assert kinds_of("FV1", 7000) == {"numbering"} and audit.gaps("FV1", after) == [5]


def test_vouchers_check_lists_findings_and_gaps(home, cfg, two):
    c1, c2 = two
    c1.add_many(1, 3)
    c1.add(5)
    bad = voucher("CAJA2", "FV2", 1)
    bad["payments"] = [{"method": "EF", "amount": "1.00"}]
    c2.raw(f"movements/{DAY}/FV2-1.json", json.dumps(bad))
    imported(cfg)
    doc = cli_json(home, "vouchers", "check", "--date", DAY.isoformat())
    assert doc["date"] == DAY.isoformat()
    assert [(f["caja"], f["code"], f["number"], f["kind"]) for f in doc["findings"]] == [("CAJA2", "FV2", 1, "payments")]
    assert doc["gaps"] == [{"caja": "CAJA1", "code": "FV1", "date": DAY.isoformat(), "missing": [4], "missing_count": 1}]
    only = cli_json(home, "vouchers", "check", "--caja", "CAJA1")
    assert only["findings"] == [] and only["gaps"][0]["missing"] == [4]
    text = run_cli(home, "vouchers", "check", check=0).stdout
    assert "gap: CAJA1 FV1: numbers missing 4" in text and "payments add up to 1.00" in text


# --- the day audit --------------------------------------------------------------------------------

def _closing(folder, numbers, day=DAY, code="FV1", voided_numbers=(), **override):
    docs = [voucher(folder.name, code, n, day, status="voided" if n in voided_numbers else "active") for n in numbers]
    closing = make_closing(folder.name, day, docs)
    closing["codes"][code].update(override)
    folder.writer.write_closing(day, closing)


def test_audit_complete_when_the_closing_and_the_main_server_agree(home, cfg, two):
    c1, _ = two
    c1.add_many(1, 3)
    c1.add(4, status="voided")
    _closing(c1, [1, 2, 3, 4], voided_numbers=(4,))
    imported(cfg)
    doc = cli_json(home, "audit", "--date", DAY.isoformat())
    assert doc["date"] == DAY.isoformat()
    [caja1] = [c for c in doc["cajas"] if c["caja"] == "CAJA1"]
    e = caja1["codes"]["FV1"]
    assert (e["status"], e["missing"], e["extra"], e["count"], e["voided"]) == ("complete", [], [], 4, 1)
    assert e["total"] == e["expected"]["total"]
    assert SyncLog.select().where((SyncLog.action == "audit") & (SyncLog.caja == "CAJA1")).get().outcome == "ok"


@pytest.mark.parametrize("held, said, override, expect", [
    ([1, 2, 4], [1, 2, 3, 4], {}, {"missing": [3], "extra": []}),
    ([1, 2, 3, 4, 5], [1, 2, 3, 4], {}, {"missing": [], "extra": [5]}),
    ([1, 2, 3], [1, 2, 3], {"count": 4}, {"missing": [], "extra": []}),
    ([1, 2, 3], [1, 2, 3], {"total": "1.00"}, {"missing": [], "extra": []}),
    ([1, 2, 3], [1, 2, 3], {"voided": 1}, {"missing": [], "extra": []}),
])
def test_audit_mismatch_names_what_differs_and_exits_1(home, cfg, two, held, said, override, expect):
    c1, _ = two
    for n in held:
        c1.add(n)
    _closing(c1, said, **override)
    imported(cfg)
    proc = run_cli(home, "--json", "audit", "--date", DAY.isoformat())
    assert proc.returncode == 1
    e = [c for c in json.loads(proc.stdout)["cajas"] if c["caja"] == "CAJA1"][0]["codes"]["FV1"]
    assert e["status"] == "mismatch" and e["missing"] == expect["missing"] and e["extra"] == expect["extra"]
    row = SyncLog.select().where((SyncLog.action == "audit") & (SyncLog.caja == "CAJA1")).get()
    assert row.outcome == "failed" and row.level == "error" and "mismatch" in row.message


def test_audit_without_a_closing_reports_the_numbering_gaps(home, cfg, two):
    c1, _ = two
    for n in (1, 2, 4):
        c1.add(n)
    imported(cfg)
    proc = run_cli(home, "--json", "audit", "--date", DAY.isoformat())
    assert proc.returncode == 0, "no closing.json is reported, not failed"
    e = [c for c in json.loads(proc.stdout)["cajas"] if c["caja"] == "CAJA1"][0]["codes"]["FV1"]
    assert (e["status"], e["missing"], e["count"]) == ("no_closing", [3], 3)
    text = run_cli(home, "audit", "--date", DAY.isoformat(), check=0).stdout
    assert "CAJA1 FV1: no closing.json; held 3 vouchers" in text and "numbers missing 3" in text


def test_a_closing_that_cannot_be_read_is_a_mismatch_that_says_why(home, cfg, two):
    c1, _ = two
    c1.add(1)
    c1.raw(f"movements/{DAY}/closing.json", "{not json")
    imported(cfg)
    proc = run_cli(home, "--json", "audit", "--date", DAY.isoformat())
    assert proc.returncode == 1
    caja1 = [c for c in json.loads(proc.stdout)["cajas"] if c["caja"] == "CAJA1"][0]
    assert "closing.json is not valid JSON" in caja1["problem"] and caja1["codes"]["FV1"]["status"] == "mismatch"
    # the POS writes it again, whole: the next import reads it again
    _closing(c1, [1])
    imported(cfg)
    assert cli_json(home, "audit", "--date", DAY.isoformat())["cajas"][0]["codes"]["FV1"]["status"] == "complete"


def test_a_closing_that_lists_a_code_with_no_sales_that_day_is_complete(home, cfg, two):
    """A POS may list every code of the caja in its informe Z, one with no sales as count 0: its first and
    last name no voucher, and nothing is missing."""
    c1, _ = two
    c1.add_many(1, 2, day=DAY)
    closing = make_closing("CAJA1", DAY, [voucher("CAJA1", "FV1", n) for n in (1, 2)])
    closing["codes"]["NC1"] = {"first": 0, "last": 0, "count": 0, "voided": 0, "total": "0.00"}
    c1.writer.write_closing(DAY, closing)
    imported(cfg)
    doc = cli_json(home, "audit", "--date", DAY.isoformat(), "--caja", "CAJA1")
    nc1 = doc["cajas"][0]["codes"]["NC1"]
    assert (nc1["status"], nc1["missing"], nc1["extra"], nc1["count"]) == ("complete", [], [], 0)
    # a voucher held for a code the closing says had no sales is extra
    c1.add(7, code="NC1", kind="credit_note")
    imported(cfg)
    proc = run_cli(home, "--json", "audit", "--date", DAY.isoformat(), "--caja", "CAJA1")
    assert proc.returncode == 1
    nc1 = json.loads(proc.stdout)["cajas"][0]["codes"]["NC1"]
    assert (nc1["status"], nc1["missing"], nc1["extra"]) == ("mismatch", [], [7])


def test_a_closing_that_cannot_be_read_fails_the_audit_even_on_a_day_with_no_vouchers_held(home, cfg, two):
    c1, _ = two
    c1.raw(f"movements/{DAY}/closing.json", "{not json")  # every voucher of the day refused, or never written
    imported(cfg)
    proc = run_cli(home, "audit", "--date", DAY.isoformat(), "--caja", "CAJA1")
    assert proc.returncode == 1, proc.stdout
    assert "CAJA1: closing.json is not valid JSON" in proc.stdout and "no closing.json" not in proc.stdout
    row = SyncLog.select().where((SyncLog.action == "audit") & (SyncLog.caja == "CAJA1")).get()
    assert row.outcome == "failed" and "not valid JSON" in row.message
    # a closing that lists no code, on a day with none held, agrees; and is not called missing
    c1.writer.write_closing(DAY, {"format": 1, "caja": "CAJA1", "date": DAY.isoformat(), "codes": {}})
    imported(cfg)
    proc = run_cli(home, "audit", "--date", DAY.isoformat(), "--caja", "CAJA1", check=0)
    assert "CAJA1: no vouchers, and a closing.json that lists none" in proc.stdout


@pytest.mark.parametrize("key, value, words", [
    ("total", "sNaN", 'codes.FV1.total is "sNaN", not an amount'),            # compared, it raised
    ("total", "NaN", 'codes.FV1.total is "NaN", not an amount'),
    ("total", "71.728,00", 'codes.FV1.total is "71.728,00", not an amount'),  # the Colombian spelling
    ("first", 1.9, "codes.FV1.first is 1.9, not a whole number"),              # was audited as 1
    ("count", True, "codes.FV1.count is true, not a whole number"),            # was audited as 1
])
def test_a_closing_with_a_value_that_is_no_number_says_which_and_how_to_write_it(home, cfg, two, key, value, words):
    c1, _ = two
    c1.add_many(1, 2)
    closing = make_closing("CAJA1", DAY, [voucher("CAJA1", "FV1", n) for n in (1, 2)])
    closing["codes"]["FV1"][key] = value
    c1.raw(f"movements/{DAY}/closing.json", json.dumps(closing))
    imported(cfg)
    proc = run_cli(home, "--json", "audit", "--date", DAY.isoformat(), "--caja", "CAJA1")
    assert proc.returncode == 1, proc.stderr
    [caja1] = json.loads(proc.stdout)["cajas"]
    assert words in caja1["problem"], caja1
    fv1 = caja1["codes"]["FV1"]
    assert (fv1["status"], fv1["missing"], fv1["extra"]) == ("mismatch", [], []), "nothing to pair with: no number is called extra"


def test_a_total_written_as_a_json_number_keeps_its_digits(home, cfg, two):
    c1, _ = two
    c1.add_many(1, 2)
    closing = make_closing("CAJA1", DAY, [voucher("CAJA1", "FV1", n) for n in (1, 2)])
    text = json.dumps(closing).replace(f'"total": "{closing["codes"]["FV1"]["total"]}"', f'"total": {closing["codes"]["FV1"]["total"]}')
    c1.raw(f"movements/{DAY}/closing.json", text)
    imported(cfg)
    e = cli_json(home, "audit", "--date", DAY.isoformat(), "--caja", "CAJA1")["cajas"][0]["codes"]["FV1"]
    assert e["status"] == "complete" and e["expected"]["total"] == closing["codes"]["FV1"]["total"]


def test_a_closing_naming_another_cajas_code_says_whose_it_is(home, cfg, two):
    c1, c2 = two
    c1.add(1)
    c2.add_many(1, 3)
    closing = make_closing("CAJA1", DAY, [voucher("CAJA1", "FV1", 1)])
    closing["codes"]["FV2"] = {"first": 1, "last": 3, "count": 3, "voided": 0, "total": "107592.00"}
    c1.writer.write_closing(DAY, closing)
    imported(cfg)
    proc = run_cli(home, "audit", "--date", DAY.isoformat(), "--caja", "CAJA1")
    assert proc.returncode == 1
    assert "CAJA1 FV2: mismatch: missing 1–3" in proc.stdout and "FV2 is a code of CAJA2, not of CAJA1" in proc.stdout


def test_gaps_past_the_listing_limit_say_how_many_are_missing_in_all(home, cfg, two):
    """A typo a million numbers ahead: the list stays bounded, and says it is cut, with the true count."""
    c1, _ = two
    resolutions.add("FV1", "POS1", 1, 5_000_000, dt.date(2026, 1, 1), dt.date(2027, 12, 31), tz=BOGOTA)
    for n in (1, 2, 3, 4_000_000):
        c1.add(n)
    imported(cfg)
    all_missing = 4_000_000 - 4
    [g] = cli_json(home, "vouchers", "check", "--date", DAY.isoformat())["gaps"]
    assert len(g["missing"]) == audit.MAX_LISTED and g["missing"][0] == 4 and g["missing_count"] == all_missing
    more = f"4–{3 + audit.MAX_LISTED} and {all_missing - audit.MAX_LISTED} more ({all_missing} in all)"
    assert f"numbers missing {more}" in run_cli(home, "vouchers", "check", "--date", DAY.isoformat(), check=0).stdout
    e = cli_json(home, "audit", "--date", DAY.isoformat(), "--caja", "CAJA1")["cajas"][0]["codes"]["FV1"]
    assert (e["status"], e["missing_count"]) == ("no_closing", all_missing)
    logged = SyncLog.select().where((SyncLog.action == "check") & (SyncLog.caja == "CAJA1")).get()
    assert logged.message == f"{DAY}: numbers missing in FV1: {more}"
    # the same against a closing.json that says the POS issued them all
    closing = {"format": 1, "caja": "CAJA1", "date": DAY.isoformat(),
               "codes": {"FV1": {"first": 1, "last": 4_000_000, "count": 4_000_000, "voided": 0, "total": "1.00"}}}
    c1.writer.write_closing(DAY, closing)
    imported(cfg)
    proc = run_cli(home, "audit", "--date", DAY.isoformat(), "--caja", "CAJA1")
    assert proc.returncode == 1 and f"missing {more}" in proc.stdout


def test_a_resolution_past_the_biggest_voucher_number_is_refused_with_exit_2(home, two):
    proc = run_cli(home, "resolution", "add", "FV1", "--prefix", "POS1", "--from", "1", "--to", "99999999999999999999",
                   "--valid-from", "2026-01-01", "--valid-to", "2026-12-31")
    assert proc.returncode == 2, proc.stderr
    assert "--to 99999999999999999999 is past the highest voucher number" in proc.stderr and "unexpected" not in proc.stderr
    assert cli_json(home, "resolution", "list")["resolutions"] == []
    assert SyncLog.select().where((SyncLog.action == "resolution add") & (SyncLog.outcome == "refused")).count() == 1


# --- doctor: resolutions --------------------------------------------------------------------------

def _resolution_check(cfg, code="FV1", now=None) -> doctor.Check:
    return next(c for c in doctor.run(cfg, now) if c.check == f"{code} resolution")


def _today(cfg) -> tuple[dt.datetime, dt.date]:
    """One instant and its date where the main server is, so a test never straddles midnight."""
    now = dt.datetime.now(dt.timezone.utc)
    return now, now.astimezone(cfg.timezone).date()


def test_doctor_wants_a_resolution_for_every_invoicing_code(cfg, two):
    c1, _ = two
    # nothing imported yet: it cannot tell invoices from notes, so it only warns
    assert _resolution_check(cfg).status == "warn"
    c1.add(1)
    imported(cfg)
    check = _resolution_check(cfg)
    assert check.status == "fail" and "code FV1 has no numbering resolution" in check.message and "resolution add FV1" in check.fix
    today = dt.datetime.now(BOGOTA).date()
    resolutions.add("FV1", "POS1", 1, 1000, today - dt.timedelta(days=10), today + dt.timedelta(days=300), tz=BOGOTA)
    assert _resolution_check(cfg).status == "ok"
    # a code whose vouchers are all credit notes needs none
    assert _resolution_check(cfg, "NC1").status == "warn"
    c1.add(1, code="NC1", kind="credit_note")
    imported(cfg)
    assert not [c for c in doctor.run(cfg) if c.check == "NC1 resolution"]


@pytest.mark.parametrize("days_left, status", [(20, "fail"), (30, "fail"), (31, "ok")])
def test_doctor_fails_a_resolution_ending_within_30_days_the_30th_included(cfg, two, days_left, status):
    now, today = _today(cfg)
    resolutions.add("FV1", "POS1", 1, 1000, today - dt.timedelta(days=300), today + dt.timedelta(days=days_left), "R-1", tz=BOGOTA)
    check = _resolution_check(cfg, now=now)
    assert check.status == status, check.message
    if status == "fail":
        assert f"resolution R-1 of FV1 ends in {days_left} days and is 0.0 % used" in check.message and "ask DIAN" in check.fix


@pytest.mark.parametrize("highest, status", [(90, "ok"), (91, "fail"), (95, "fail")])
def test_doctor_fails_a_resolution_more_than_90_percent_used(cfg, two, highest, status):
    c1, _ = two
    now, today = _today(cfg)
    resolutions.add("FV1", "POS1", 1, 100, today - dt.timedelta(days=300), today + dt.timedelta(days=300), "R-1", tz=BOGOTA)
    c1.add(1, day=today)
    c1.add(highest, day=today)  # the highest number held is what is used: the gap does not give numbers back
    importer.import_day(cfg, [], today, "skip")
    check = _resolution_check(cfg, now=now)
    assert check.status == status, check.message
    if status == "fail":
        assert f"ends in 300 days and is {highest}.0 % used" in check.message and "ask DIAN" in check.fix
    else:
        assert "90.0 % used" in check.message


def test_doctor_fails_a_resolution_with_every_number_used(cfg, two):
    c1, _ = two
    now, today = _today(cfg)
    resolutions.add("FV1", "POS1", 1, 10, today - dt.timedelta(days=300), today + dt.timedelta(days=300), tz=BOGOTA)
    for n in range(1, 11):
        c1.add(n, day=today)
    importer.import_day(cfg, [], today, "skip")
    check = _resolution_check(cfg, now=now)
    assert check.status == "fail" and "no resolution valid today with numbers left" in check.message


def test_a_successor_recorded_clears_a_resolution_that_ends_soon_but_not_one_running_out_of_numbers(cfg, two):
    c1, _ = two
    now, today = _today(cfg)
    days = lambda n: today + dt.timedelta(days=n)  # noqa: E731
    resolutions.add("FV1", "POS1", 1001, 2000, days(-300), days(20), "R-1", tz=BOGOTA)
    assert _resolution_check(cfg, now=now).status == "fail"
    c1.add(2096, day=today)  # misnumbered ahead: a successor 2001–2100 would be 96 % used before it starts
    importer.import_day(cfg, [], today, "skip")
    # not a successor: one leaving a day with no resolution, one running out of days or numbers itself, one
    # numbering backwards
    for numbers, valid_from, valid_to in [((2001, 3000), days(22), days(400)), ((2001, 3000), days(21), days(30)),
                                          ((2001, 2100), days(21), days(400)), ((1, 1000), days(21), days(400))]:
        r, _ = resolutions.add("FV1", "POS1", *numbers, valid_from, valid_to, "R-2", tz=BOGOTA)
        check = _resolution_check(cfg, now=now)
        assert check.status == "fail" and "resolution R-1 of FV1 ends in 20 days" in check.message, (numbers, valid_from, valid_to)
        resolutions.remove(r.id, tz=BOGOTA)
    # the day after R-1 ends, R-2 takes over: nothing to ask DIAN for
    resolutions.add("FV1", "POS1", 2001, 3000, days(21), days(400), "R-2", tz=BOGOTA)
    check = _resolution_check(cfg, now=now)
    assert check.status == "ok", check.message
    assert f"then resolution R-2 (POS1 2001–3000) from {days(21)}" in check.message
    # but numbers running out today are not helped by a resolution that starts in 21 days
    c1.add(1950, day=today)
    importer.import_day(cfg, [], today, "skip")
    check = _resolution_check(cfg, now=now)
    assert check.status == "fail" and "ends in 20 days and is 95.0 % used" in check.message


def test_doctor_judges_the_resolution_granted_last_even_when_it_numbers_below_the_old_one(cfg, two):
    """DIAN granted 1–999 after 1000–5000, and the POS moved to it: the old range ending soon asks for nothing."""
    c1, _ = two
    now, today = _today(cfg)
    days = lambda n: today + dt.timedelta(days=n)  # noqa: E731
    resolutions.add("FV1", "POS1", 1000, 5000, days(-300), days(10), "OLD", tz=BOGOTA)
    resolutions.add("FV1", "POS1", 1, 999, days(-5), days(700), "NEW", tz=BOGOTA)
    c1.add(1000, day=days(-6))
    c1.add(1, day=today)
    for day in (days(-6), today):
        importer.import_day(cfg, [], day, "skip")
    check = _resolution_check(cfg, now=now)
    assert check.status == "ok" and check.message.startswith(f"POS1 1–999 until {days(700)}"), check.message
    # the new one running out of numbers is still failed, whatever the old one has left
    c1.add(950, day=today)
    importer.import_day(cfg, [], today, "skip")
    check = _resolution_check(cfg, now=now)
    assert check.status == "fail" and "resolution NEW of FV1" in check.message and "95.1 % used" in check.message, check.message


# Catalog files that hold everything the test voucher uses (seller V04, paid EF, lines ALM-EJ INC 8 and GAS-400 IVA 19)…
COVERING = {
    "products": "code,description,price\nALM-EJ,Almuerzo,16000.00\nGAS-400,Gaseosa,4000.00\n",
    "payment_methods": "code,name\nEF,Efectivo\nNEQUI,Nequi\n",
    "taxes": "code,type,rate\nINC8,INC,8\nIVA19,IVA,19.00\n",
    "sellers": "code,name\nV01,Diana\nV04,Édgar\n",
}
# …and, for each, one short of what it uses, with what doctor must name.
SHORT = {
    "products": ("code,description,price\nALM-EJ,Almuerzo,16000.00\n", "products: GAS-400"),
    "payment_methods": ("code,name\nNEQUI,Nequi\n", "payment_methods: EF"),
    "taxes": ("code,type,rate\nINC8,INC,8\nIVA5,IVA,5\nINC19,INC,19\n", "taxes: IVA 19 %"),  # type and rate both count
    "sellers": ("code,name\nV01,Diana\n", "sellers: V04"),
}


def _load(tmp_path, files: dict[str, str]) -> None:
    from syscafe_sync import catalogs

    for name, text in files.items():
        (tmp_path / f"{name}.csv").write_text(text, encoding="utf-8")
        catalogs.load(name, tmp_path / f"{name}.csv")


def _cover_check(cfg, now) -> doctor.Check:
    return next(c for c in doctor.run(cfg, now) if c.check == "catalogs cover the vouchers")


def test_doctor_wants_the_catalogs_to_cover_what_the_vouchers_use(cfg, two, tmp_path):
    c1, _ = two
    now, today = _today(cfg)
    c1.add(1, day=today, seller="V04")
    importer.import_day(cfg, [], today, "skip")
    check = _cover_check(cfg, now)
    assert check.status == "fail"
    for words in ("payment_methods: EF", "sellers: V04", "products: ALM-EJ, GAS-400", "taxes: INC 8 %, IVA 19 %"):
        assert words in check.message
    _load(tmp_path, COVERING)
    check = _cover_check(cfg, now)
    assert check.status == "ok", check.message


@pytest.mark.parametrize("short", sorted(SHORT))
def test_doctor_names_the_one_catalog_that_lacks_what_a_voucher_uses(cfg, two, tmp_path, short):
    c1, _ = two
    now, today = _today(cfg)
    c1.add(1, day=today, seller="V04")
    c1.add(2, day=today - dt.timedelta(days=doctor.COVER_DAYS + 1), seller="V99", payments=[("TD", "35864.00")])  # too old to count
    for day in (today, today - dt.timedelta(days=doctor.COVER_DAYS + 1)):
        importer.import_day(cfg, [], day, "skip")
    text, named = SHORT[short]
    _load(tmp_path, dict(COVERING, **{short: text}))
    check = _cover_check(cfg, now)
    assert check.status == "fail" and check.message.endswith(f"not in the catalogs: {named}"), check.message
    _load(tmp_path, {short: COVERING[short]})
    assert _cover_check(cfg, now).status == "ok"
