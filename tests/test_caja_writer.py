"""The caja-side writer writes what SPEC §1 says, on real files."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from decimal import Decimal

import pytest

from syscafe_sync.caja import CajaWriter, make_closing, make_voucher

BOGOTA = dt.timezone(dt.timedelta(hours=-5))
ISSUED = dt.datetime(2026, 11, 22, 14, 42, 10, tzinfo=BOGOTA)

SPEC_LINES = [
    {"product": "ALM-EJ", "description": "Almuerzo ejecutivo", "quantity": "2",
     "unit_price": "16000.00", "discount": "3200.00", "taxes": [{"type": "INC", "rate": "8"}]},
    {"product": "CAF-500", "description": "Café 500 g", "quantity": "1",
     "unit_price": "20000.00", "taxes": [{"type": "IVA", "rate": "5"}]},
]


def spec_voucher(**kw) -> dict:
    args = dict(prefix="POS2", customer={"id": "1020304050", "id_type": "13", "name": "Ana Ruiz"},
                loyalty={"customer": "1020304050", "earned": 48, "redeemed": 0})
    args.update(kw)
    return make_voucher("CAJA2", "FV2", 1547, ISSUED, SPEC_LINES,
                        [("EF", "30000.00"), ("NEQUI", Decimal("22104"))], **args)


def all_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_make_voucher_matches_spec_example_figures():
    v = spec_voucher()
    a, b = v["lines"]
    assert (a["quantity"], a["unit_price"], a["discount"], a["base"]) == ("2", "16000.00", "3200.00", "28800.00")
    assert a["taxes"] == [{"type": "INC", "rate": "8", "amount": "2304.00"}]
    assert (b["discount"], b["base"], b["taxes"][0]["amount"]) == ("0.00", "20000.00", "1000.00")
    assert v["totals"] == {"base": "48800.00", "tax": "3304.00", "tip": "0.00", "total": "52104.00"}
    assert v["payments"] == [{"method": "EF", "amount": "30000.00"},
                             {"method": "NEQUI", "amount": "22104.00"}]
    assert v["issued_at"] == "2026-11-22T14:42:10-05:00"
    assert "cude" not in v and "references" not in v  # None optionals are omitted


def test_make_voucher_rounds_half_up_and_defaults_to_cash():
    line = {"product": "X", "description": "x", "quantity": "0.5", "unit_price": "2003.40",
            "taxes": [{"type": "IVA", "rate": "5"}]}
    v = make_voucher("C", "FV9", 1, ISSUED, [line], None, tip="100")
    # 1001.70 × 5 % = 50.085: half up gives 50.09 where banker's rounding gives 50.08
    assert v["lines"][0]["base"] == "1001.70"
    assert v["lines"][0]["taxes"][0]["amount"] == "50.09"
    assert v["totals"] == {"base": "1001.70", "tax": "50.09", "tip": "100.00", "total": "1151.79"}
    assert v["payments"] == [{"method": "EF", "amount": "1151.79"}]
    assert v["lines"][0]["quantity"] == "0.5"


def test_voucher_lands_in_its_day_folder_without_temp_files(tmp_path):
    w = CajaWriter(tmp_path)
    path = w.write_voucher(spec_voucher())
    assert path == tmp_path / "movements" / "2026-11-22" / "FV2-1547.json"
    assert all_files(tmp_path) == ["movements/2026-11-22/FV2-1547.json"]
    raw = path.read_bytes()
    assert "Café".encode("utf-8") in raw  # UTF-8, not \u escapes
    doc = json.loads(raw)
    assert doc["totals"]["total"] == "52104.00"
    assert doc["number"] == 1547


def test_voucher_day_override_and_padding(tmp_path):
    w = CajaWriter(tmp_path)
    path = w.write_voucher(spec_voucher(), day=dt.date(2026, 11, 21), pad=8)
    assert path.relative_to(tmp_path).as_posix() == "movements/2026-11-21/FV2-00001547.json"


def test_day_defaults_to_the_local_date_of_issued_at(tmp_path):
    late = dt.datetime(2026, 11, 22, 23, 30, tzinfo=BOGOTA)  # already the 23rd in UTC
    v = make_voucher("CAJA2", "FV2", 7, late, SPEC_LINES, None)
    assert CajaWriter(tmp_path).write_voucher(v).parent.name == "2026-11-22"


def test_day_is_the_cajas_calendar_day_whatever_offset_issued_at_is_written_in(tmp_path):
    utc_evening = dt.datetime(2026, 11, 23, 2, 30, tzinfo=dt.timezone.utc)  # 21:30 on the 22nd in Bogotá
    v = make_voucher("CAJA2", "FV2", 8, utc_evening, SPEC_LINES, None)
    assert CajaWriter(tmp_path / "none").write_voucher(v).parent.name == "2026-11-22", "no caja.json: Bogotá"
    w = CajaWriter(tmp_path / "madrid")
    w.write_caja_json("CAJA2", ["FV2"], "900123456-7", timezone="Europe/Madrid")
    assert w.write_voucher(v).parent.name == "2026-11-23", "03:30 on the 23rd in Madrid"
    w.write_caja_json("CAJA2", ["FV2"], "900123456-7", timezone="Mars/Olympus")
    with pytest.raises(ValueError, match=r"timezone 'Mars/Olympus' in .*caja.json is not a time zone known here"):
        w.write_voucher(v)
    assert w.write_voucher(v, day=dt.date(2026, 11, 22)).parent.name == "2026-11-22", "a day given needs no zone"


def test_without_a_time_zone_database_the_default_is_colombias_fixed_offset(tmp_path):
    """A POS on Windows without the tzdata package cannot look names up: Colombia keeps UTC-05:00 all year."""
    try:
        import tzdata  # noqa: F401
        pytest.skip("the tzdata package answers every name: there is no machine without a database here")
    except ImportError:
        pass
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        with pytest.raises(zoneinfo.ZoneInfoNotFoundError):
            zoneinfo.ZoneInfo("America/Bogota")
        v = make_voucher("CAJA2", "FV2", 9, dt.datetime(2026, 11, 23, 4, 59, tzinfo=dt.timezone.utc), SPEC_LINES, None)
        w = CajaWriter(tmp_path)
        w.write_caja_json("CAJA2", ["FV2"], "900123456-7")
        assert w.write_voucher(v).parent.name == "2026-11-22"
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


def test_rewrite_replaces_whole_file_and_leaves_no_temp(tmp_path):
    w = CajaWriter(tmp_path)
    w.write_voucher(spec_voucher())
    path = w.write_voucher(spec_voucher(status="voided"))
    assert json.loads(path.read_text("utf-8"))["status"] == "voided"
    assert not list(tmp_path.rglob(".*"))


def test_decimals_and_datetimes_serialise_as_strings(tmp_path):
    w = CajaWriter(tmp_path)
    rule = {"format": 1, "id": "R-1", "version": 1, "updated_at": ISSUED,
            "valid_from": dt.date(2026, 11, 1), "action": {"percent": Decimal("10"),
                                                          "max_amount": Decimal("5000.00")}}
    doc = json.loads(w.write_rule(rule).read_text("utf-8"))
    assert doc["updated_at"] == "2026-11-22T14:42:10-05:00"
    assert doc["valid_from"] == "2026-11-01"
    assert doc["action"] == {"percent": "10", "max_amount": "5000.00"}


@pytest.mark.parametrize("field", ["format", "caja", "code", "number", "issued_at",
                                   "status", "lines", "totals"])
def test_refuses_voucher_missing_a_required_field(tmp_path, field):
    v = spec_voucher()
    del v[field]
    with pytest.raises(ValueError, match=field):
        CajaWriter(tmp_path).write_voucher(v)
    assert all_files(tmp_path) == []


def test_refuses_voucher_without_totals_total(tmp_path):
    v = spec_voucher()
    del v["totals"]["total"]
    with pytest.raises(ValueError, match=r"totals\.total"):
        CajaWriter(tmp_path).write_voucher(v)


@pytest.mark.parametrize("where", ["totals", "line", "payment"])
def test_refuses_floats_anywhere(tmp_path, where):
    v = spec_voucher()
    if where == "totals":
        v["totals"]["total"] = 52104.0
    elif where == "line":
        v["lines"][0]["unit_price"] = 16000.0
    else:
        v["payments"][1]["amount"] = 22104.0
    with pytest.raises(ValueError, match="float"):
        CajaWriter(tmp_path).write_voucher(v)
    assert all_files(tmp_path) == []


def test_make_voucher_refuses_float_money():
    line = dict(SPEC_LINES[1], unit_price=20000.0)
    with pytest.raises(ValueError, match="unit_price"):
        make_voucher("CAJA2", "FV2", 1, ISSUED, [line], None)


def test_refuses_naive_issued_at(tmp_path):
    v = spec_voucher()
    v["issued_at"] = "2026-11-22T14:42:10"
    with pytest.raises(ValueError, match="issued_at"):
        CajaWriter(tmp_path).write_voucher(v)
    with pytest.raises(ValueError, match="issued_at"):
        make_voucher("CAJA2", "FV2", 1, dt.datetime(2026, 11, 22, 14, 0), SPEC_LINES, None)


def test_refuses_bad_status_and_number(tmp_path):
    w = CajaWriter(tmp_path)
    with pytest.raises(ValueError, match="status"):
        w.write_voucher(dict(spec_voucher(), status="cancelled"))
    with pytest.raises(ValueError, match="number"):
        w.write_voucher(dict(spec_voucher(), number="1547"))


@pytest.mark.parametrize("rule_id", ["a/b", "a\\b", "..", "x..y", ".hidden", ""])
def test_refuses_bad_rule_ids(tmp_path, rule_id):
    with pytest.raises(ValueError, match="id"):
        CajaWriter(tmp_path).write_rule({"format": 1, "id": rule_id, "version": 1})
    assert all_files(tmp_path) == []


def test_rule_and_caja_json_land_where_spec_says(tmp_path):
    w = CajaWriter(tmp_path)
    assert w.write_rule({"format": 1, "id": "R-HH-ALM", "version": 3}) == tmp_path / "rules" / "R-HH-ALM.json"
    path = w.write_caja_json("CAJA2", ["FV2", "NC2"], "900123456-7")
    assert path == tmp_path / "caja.json"
    assert json.loads(path.read_text("utf-8")) == {
        "format": 1, "caja": "CAJA2", "codes": ["FV2", "NC2"], "company": "900123456-7",
        "timezone": "America/Bogota"}
    with pytest.raises(ValueError, match="codes"):
        w.write_caja_json("CAJA2", ["FV2", "../x"], "900123456-7")


def test_ledger_append_keeps_earlier_lines(tmp_path):
    w = CajaWriter(tmp_path)
    e1 = {"seq": 1203, "customer": "1020304050", "kind": "earn", "points": 48,
          "voucher": "FV2-1547", "at": "2026-11-22T14:42:10-05:00"}
    e2 = {"seq": 1204, "customer": "1020304050", "kind": "redeem", "points": -20,
          "voucher": "FV2-1548", "at": ISSUED}
    path = w.append_loyalty(dt.date(2026, 11, 22), [e1])
    first = path.read_bytes()
    assert path == tmp_path / "loyalty" / "2026-11-22.jsonl"
    w.append_loyalty("2026-11-22", [e2])
    raw = path.read_bytes()
    assert raw.startswith(first) and raw.endswith(b"\n")
    lines = raw.decode("utf-8").splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [1203, 1204]
    assert json.loads(lines[1])["at"] == "2026-11-22T14:42:10-05:00"


def test_ledger_append_drops_a_torn_last_line(tmp_path):
    w = CajaWriter(tmp_path)
    e = {"seq": 1, "customer": "1", "kind": "earn", "points": 5}
    path = w.append_loyalty("2026-11-22", [e])
    with open(path, "ab") as f:
        f.write(b'{"seq": 2, "cust')  # a killed append: never counted by readers
    w.append_loyalty("2026-11-22", [dict(e, seq=3)])
    assert [json.loads(x)["seq"] for x in path.read_text("utf-8").splitlines()] == [1, 3]


def test_ledger_refuses_float_points_and_naive_at(tmp_path):
    w = CajaWriter(tmp_path)
    e = {"seq": 1, "customer": "1", "kind": "earn", "points": 5}
    with pytest.raises(ValueError, match="points"):
        w.append_loyalty("2026-11-22", [dict(e, points=5.0)])
    with pytest.raises(ValueError, match="at"):
        w.append_loyalty("2026-11-22", [dict(e, at="2026-11-22T10:00:00")])
    assert all_files(tmp_path) == []


def test_closing_counts_voided_but_does_not_total_them(tmp_path):
    a = spec_voucher()
    b = make_voucher("CAJA2", "FV2", 1548, ISSUED, SPEC_LINES[1:], None, status="voided")
    c = make_voucher("CAJA2", "FV2", 1546, ISSUED, SPEC_LINES[1:], None)
    closing = make_closing("CAJA2", dt.date(2026, 11, 22), [a, b, c])
    assert closing == {"format": 1, "caja": "CAJA2", "date": "2026-11-22", "codes": {
        "FV2": {"first": 1546, "last": 1548, "count": 3, "voided": 1, "total": "73104.00"}}}
    path = CajaWriter(tmp_path).write_closing(dt.date(2026, 11, 22), closing)
    assert path == tmp_path / "movements" / "2026-11-22" / "closing.json"
    assert json.loads(path.read_text("utf-8")) == closing
    with pytest.raises(ValueError, match="date"):
        CajaWriter(tmp_path).write_closing("2026-11-23", closing)
