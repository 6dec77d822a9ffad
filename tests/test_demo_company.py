"""The demo company is deterministic, internally consistent, and is what fixtures/ holds."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from syscafe_sync import demo_company
from syscafe_sync.caja import layout
from syscafe_sync.demo_company import LOST, SHORT_PAID

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CAJAS = ("CAJA1", "CAJA2", "CAJA3")
GENERATED = (*CAJAS, "catalogs", "accounting.toml")  # what a build writes under DEST
CATALOG_FILES = {"products": "products.csv", "groups": "groups.csv", "taxes": "taxes.csv",
                 "payment_methods": "payment_methods.csv", "sellers": "sellers.json", "customers": "customers.jsonl"}
BAD = {
    "CAJA3/movements/2026-11-21/FV3-2015.json",   # truncated JSON
    "CAJA2/movements/2026-11-21/FV1-9001.json",   # code of CAJA1 inside CAJA2
    "CAJA1/movements/2026-11-21/.FV1-1010.json.tmp",  # leftover temp, ignored
}
FIRST = {"FV1": 1001, "FV2": 1501, "FV3": 2001}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    dest = tmp_path_factory.mktemp("demo")
    return dest, demo_company.build(dest)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.parts[len(root.parts)] in GENERATED}


def good_vouchers(root: Path):
    """(relative path, doc) of every voucher file a reader should import."""
    for p in sorted(root.glob("CAJA*/movements/*/*")):
        rel = p.relative_to(root).as_posix()
        if rel in BAD or p.name == layout.CLOSING:
            continue
        yield rel, json.loads(p.read_text("utf-8"))


def test_two_builds_are_identical_byte_for_byte(demo, tmp_path):
    root, summary = demo
    again = demo_company.build(tmp_path)
    assert again == summary
    assert tree(tmp_path) == tree(root)


def test_committed_fixtures_equal_a_fresh_build(demo):
    root, _ = demo
    fresh, committed = tree(root), tree(FIXTURES)
    assert sorted(committed) == sorted(fresh), "regenerate: python -m syscafe_sync.demo_company fixtures --replace"
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert changed == [], "fixtures/ edited by hand? regenerate them"


def test_build_refuses_to_append_over_an_existing_company(demo):
    root, _ = demo
    with pytest.raises(FileExistsError):
        demo_company.build(root)


def test_exactly_the_expected_bad_files(demo):
    root, summary = demo
    assert {b["path"] for b in summary["bad_files"]} == BAD
    for rel in BAD:
        assert (root / rel).is_file()
    with pytest.raises(json.JSONDecodeError):
        json.loads((root / "CAJA3/movements/2026-11-21/FV3-2015.json").read_text("utf-8"))
    stray = json.loads((root / "CAJA2/movements/2026-11-21/FV1-9001.json").read_text("utf-8"))
    assert (stray["caja"], stray["code"], stray["number"]) == ("CAJA2", "FV1", 9001)
    ignored = [p.relative_to(root).as_posix() for p in root.rglob("*") if layout.is_ignored(p.name)]
    assert ignored == ["CAJA1/movements/2026-11-21/.FV1-1010.json.tmp"]
    # Every other movement file is a well-formed voucher of its own caja.
    for rel, doc in good_vouchers(root):
        caja = rel.split("/")[0]
        codes = json.loads((root / caja / "caja.json").read_text("utf-8"))["codes"]
        assert doc["caja"] == caja and doc["code"] in codes, rel
        assert layout.parse_voucher_name(Path(rel).name) == (doc["code"], doc["number"]), rel


def test_bad_numbers_do_not_collide_with_good_vouchers(demo):
    root, _ = demo
    good = {(d["code"], d["number"]) for _, d in good_vouchers(root)}
    assert ("FV3", 2015) not in good and ("FV1", 9001) not in good
    assert ("FV1", 1010) in good  # the temp file is a killed rewrite of a real voucher


def D(text: str) -> Decimal:
    assert isinstance(text, str), text
    return Decimal(text)


def test_every_good_voucher_adds_up(demo):
    root, _ = demo
    count, short = 0, []
    for rel, v in good_vouchers(root):
        count += 1
        base_sum = tax_sum = Decimal(0)
        for line in v["lines"]:
            base = D(line["quantity"]) * D(line["unit_price"]) - D(line["discount"])
            assert D(line["base"]) == base, rel
            for tax in line["taxes"]:
                assert abs(D(tax["amount"]) - base * D(tax["rate"]) / 100) <= Decimal("0.01"), rel
                tax_sum += D(tax["amount"])
            base_sum += base
        t = v["totals"]
        assert D(t["base"]) == base_sum and D(t["tax"]) == tax_sum, rel
        assert D(t["total"]) == D(t["base"]) + D(t["tax"]) + D(t["tip"]), rel
        paid = sum(D(p["amount"]) for p in v["payments"])
        if (v["caja"], rel.split("/")[2]) == (SHORT_PAID[0], SHORT_PAID[1].isoformat()) and paid != D(t["total"]):
            short.append(rel)
            assert paid == D(t["total"]) - 100, rel  # the one voucher paid short on purpose: a finding
        else:
            assert paid == D(t["total"]), rel
        issued = dt.datetime.fromisoformat(v["issued_at"])
        assert issued.utcoffset() == dt.timedelta(hours=-5), rel
        assert issued.date().isoformat() == rel.split("/")[2], rel
        assert dt.time(7) <= issued.time() < dt.time(21), rel
        if "customer" in v:
            assert v["customer"]["id_type"] == "13"
            assert v["loyalty"]["earned"] == int(D(t["base"]) // 1000), rel
    assert count == 55
    assert short == ["CAJA1/movements/2026-11-21/FV1-1014.json"]


def test_content_matches_the_brief(demo):
    root, summary = demo
    vouchers = [v for _, v in good_vouchers(root)]
    per_day = summary["vouchers"]
    for caja in CAJAS:
        for day in ("2026-11-20", "2026-11-21"):
            invoices = [v for v in vouchers if v["caja"] == caja and v["kind"] == "pos_invoice"
                        and v["issued_at"].startswith(day)]
            assert 6 <= len(invoices) <= 12
            in_folder = [v for rel, v in good_vouchers(root) if rel.startswith(f"{caja}/movements/{day}/")]
            assert per_day[caja][day] == len(in_folder)
    for code, first in FIRST.items():
        numbers = sorted(v["number"] for v in vouchers if v["code"] == code)
        lost = [2010] if code == "FV3" else []  # sold, counted in closing.json, never written: audit's missing voucher
        assert numbers == [n for n in range(first, first + len(numbers) + len(lost)) if n not in lost]
    voided = [v for v in vouchers if v["status"] == "voided"]
    assert [(v["caja"], v["issued_at"][:10]) for v in voided] == [("CAJA2", "2026-11-21")]
    notes = [v for v in vouchers if v["kind"] == "credit_note"]
    assert [(n["caja"], n["code"]) for n in notes] == [("CAJA1", "NC1")]
    ref = notes[0]["references"][0]
    assert ref["code"] == "FV1" and any(v["code"] == "FV1" and v["number"] == ref["number"] for v in vouchers)
    assert len({v.get("customer", {}).get("id") for v in vouchers}) > 3
    assert {p["method"] for v in vouchers for p in v["payments"]} >= {"EF", "NEQUI", "DAVIPLATA", "TD", "TC"}


def test_closings_agree_with_the_good_vouchers(demo):
    root, _ = demo
    by_folder: dict[tuple[str, str], list[dict]] = {}
    for rel, v in good_vouchers(root):
        caja, _, day, _ = rel.split("/")
        by_folder.setdefault((caja, day), []).append(v)
    assert len(by_folder) == 6
    for (caja, day), vs in by_folder.items():
        closing = json.loads((root / caja / "movements" / day / "closing.json").read_text("utf-8"))
        assert closing["caja"] == caja and closing["date"] == day
        for code, c in closing["codes"].items():
            mine = [v for v in vs if v["code"] == code]
            if (caja, day) == (LOST[0], LOST[1].isoformat()):
                # the lost voucher is in the closing, not in the folder
                assert c["count"] == len(mine) + 1 and c["first"] < 2010 < c["last"]
                assert D(c["total"]) > sum(D(v["totals"]["total"]) for v in mine if v["status"] == "active")
                continue
            assert c["count"] == len(mine)
            assert (c["first"], c["last"]) == (min(v["number"] for v in mine), max(v["number"] for v in mine))
            assert c["voided"] == sum(v["status"] == "voided" for v in mine)
            assert D(c["total"]) == sum(D(v["totals"]["total"]) for v in mine if v["status"] == "active")


def test_loyalty_ledgers_match_vouchers(demo):
    root, _ = demo
    vouchers = {f"{v['code']}-{v['number']}": v for _, v in good_vouchers(root)}
    redeems = 0
    for caja in CAJAS:
        seqs, balance, earned = [], {}, set()
        for ledger in sorted((root / caja / "loyalty").glob("*.jsonl")):
            raw = ledger.read_text("utf-8")
            assert raw.endswith("\n")
            for line in raw.splitlines():
                e = json.loads(line)
                seqs.append(e["seq"])
                v = vouchers[e["voucher"]]
                assert v["caja"] == caja and v["customer"]["id"] == e["customer"]
                assert e["at"] == v["issued_at"] and e["at"].startswith(ledger.stem)
                if e["kind"] == "earn":
                    assert e["points"] == v["loyalty"]["earned"] > 0
                    earned.add(e["voucher"])
                else:
                    assert e["kind"] == "redeem" and e["points"] == -v["loyalty"]["redeemed"]
                    redeems += 1
                balance[e["customer"]] = balance.get(e["customer"], 0) + e["points"]
        assert seqs == sorted(set(seqs)), caja
        assert all(p >= 0 for p in balance.values())
        earning = {k for k, v in vouchers.items() if v["caja"] == caja and v.get("loyalty", {}).get("earned")}
        assert earned == earning, caja
    assert redeems == 1


def test_rules(demo):
    root, _ = demo
    rules = {p.relative_to(root).as_posix(): json.loads(p.read_text("utf-8"))
             for p in sorted(root.glob("CAJA*/rules/*.json"))}
    assert 2 <= len({r["id"] for r in rules.values()}) <= 3
    assert rules["CAJA1/rules/R-HH-ALM.json"] == rules["CAJA2/rules/R-HH-ALM.json"]
    for rel, r in rules.items():
        assert Path(rel).stem == r["id"]


def test_small(demo):
    root, _ = demo
    assert sum(len(b) for b in tree(root).values()) < 300_000


# --- catalogs/: the files for `catalogs load` ----------------------------------------------------------


def test_build_writes_every_catalog_file(demo):
    root, summary = demo
    assert sorted(p.name for p in (root / "catalogs").iterdir()) == sorted(CATALOG_FILES.values())
    assert {n: s["file"] for n, s in summary["catalogs"].items()} == {n: f"catalogs/{f}" for n, f in CATALOG_FILES.items()}
    assert summary["catalogs"]["customers"]["key"] == "id" and summary["catalogs"]["products"]["records"] == 17


def test_build_refuses_to_write_over_existing_catalogs(tmp_path):
    (tmp_path / "catalogs").mkdir()
    with pytest.raises(FileExistsError, match="catalogs"):
        demo_company.build(tmp_path)
    assert not (tmp_path / "CAJA1").exists()  # refused before writing anything


def test_build_catalogs_alone(tmp_path, demo):
    root, summary = demo
    assert demo_company.build_catalogs(tmp_path) == summary["catalogs"]
    assert tree(tmp_path) == {k: v for k, v in tree(root).items() if k.startswith("catalogs/")}


def _csv(path: Path) -> list[dict]:
    import csv
    import io

    text = path.read_text("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text), delimiter=";" if ";" in text.splitlines()[0] else ","))


def test_catalogs_agree_with_the_vouchers(demo):
    root, _ = demo
    cat = root / "catalogs"
    products = {p["code"]: p for p in _csv(cat / "products.csv")}
    groups = {g["code"] for g in _csv(cat / "groups.csv")}
    taxes = {(t["type"], t["rate"]) for t in _csv(cat / "taxes.csv")}
    methods = {m["code"] for m in _csv(cat / "payment_methods.csv")}
    sellers = {s["code"] for s in json.loads((cat / "sellers.json").read_text("utf-8"))}
    customers = {json.loads(line)["id"]: json.loads(line) for line in (cat / "customers.jsonl").read_text("utf-8").splitlines()}
    assert {t["code"] for t in _csv(cat / "taxes.csv")} == {"INC8", "IVA19", "IVA5"}
    for p in products.values():
        assert p["group"] in groups and (p["tax_type"], p["tax_rate"]) in taxes and D(p["price"]) > 0
    for rel, v in good_vouchers(root):
        for line in v["lines"]:
            p = products[line["product"]]
            assert (p["description"], p["price"]) == (line["description"], line["unit_price"]), rel
            assert [(t["type"], t["rate"]) for t in line["taxes"]] == [(p["tax_type"], p["tax_rate"])], rel
        assert {pay["method"] for pay in v["payments"]} <= methods, rel
        assert v.get("seller") is None or v["seller"] in sellers, rel
        if "customer" in v:
            assert customers[v["customer"]["id"]]["name"] == v["customer"]["name"], rel
    assert methods == {"EF", "NEQUI", "DAVIPLATA", "TD", "TC"}
    # both CSV dialects `catalogs load` reads: ',' plain, and ';' with a BOM as a Spanish spreadsheet saves it
    assert (cat / "payment_methods.csv").read_bytes().startswith("\ufeffcode;".encode("utf-8"))
    assert (cat / "products.csv").read_bytes().startswith(b"code,")
    assert any(c["email"] is None for c in customers.values())  # a null, kept as null
