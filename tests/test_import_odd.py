"""Odd voucher files in a day folder: each is refused with its reason, the rest of the folder imported
(SPEC §3), instead of failing the caja's day at every pass; and a refused file is tried again."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from conftest import DAY, voucher

from syscafe_sync import audit, catchup, importer, passes
from syscafe_sync.caja import make_closing
from syscafe_sync.db.models import Refusal, Voucher, VoucherLine


def run(cfg, mode="skip", day=DAY):
    return {r.caja: r for r in importer.import_day(cfg, [], day, mode).results}["CAJA1"]


def open_refusals() -> dict[str, str]:
    return {r.path: r.reason for r in Refusal.select().where(Refusal.resolved_at.is_null())}


def doc(**changes) -> str:
    v = voucher("CAJA1", "FV1", 3)
    for path, value in changes.items():
        at, *keys = path.split(".")
        target = v
        for k in [at, *keys][:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        last = [at, *keys][-1]
        target[int(last) if isinstance(target, list) else last] = value
    return json.dumps(v)


def raw_number(text: str, field: str, value: str) -> str:
    """`text` with `field`'s JSON value replaced by `value`, as written (an integer json.dumps would not write)."""
    head, _, tail = text.partition(f'"{field}": ')
    return head + f'"{field}": ' + value + tail[tail.index(","):]


ODD = {
    "an integer of 5,000 digits": (lambda: raw_number(doc(), "number", "9" * 5000), "a number thousands of digits long"),
    "a number past 2^63": (lambda: doc(number=2**64), "number = 18446744073709551616 is out of range"),
    "points past what the column holds": (lambda: doc(**{"loyalty": {"customer": "1020", "earned": 10**30}}),
                                          "loyalty.earned = 1000000000000000000000000000000 is out of range"),
    "JSON nested 100,000 deep": (lambda: '{"format": 1, "lines": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                 "nested thousands of levels deep"),
    "half of a character": (lambda: doc(**{"customer": {"id": "1020", "name": "Caf\ud83d"}}),
                            "customer.name holds half of a character (\\ud83d without its pair)"),
    "a NUL in a text": (lambda: doc(cashier="ana\u0000"), "cashier holds a NUL character"),
    "an amount of a million digits": (lambda: doc(**{"lines.0.quantity": "1E+999999"}),
                                      'lines[0].quantity = "1E+999999" is out of range for an amount'),
    "the year 9999 west of Greenwich": (lambda: doc(issued_at="9999-12-31T23:59:59-05:00"), "is not a plausible date"),
    "the year 1 east of Greenwich": (lambda: doc(issued_at="0001-01-01T00:00:00+05:00"), "is not a plausible date"),
}


@pytest.mark.parametrize("case", list(ODD))
def test_an_odd_voucher_is_refused_with_its_reason_and_the_rest_of_the_folder_imported(cfg, two, case):
    c1, _ = two
    c1.add_many(1, 2)
    make, reason = ODD[case]
    c1.raw(f"movements/{DAY}/FV1-3.json", make())
    for _ in range(2):  # and so at every pass, the caja's day never failing
        res = run(cfg)
        assert res.outcome == "ok", res.message
    assert sorted(v.number for v in Voucher.select()) == [1, 2]
    assert reason in open_refusals()[f"movements/{DAY}/FV1-3.json"]


def test_the_reference_parser_refuses_what_the_database_could_not_hold(cfg):
    """caja.voucher.parse, the one a POS vendors, gives the same verdicts as the importer."""
    from syscafe_sync.caja import voucher as reference
    from syscafe_sync.voucher_decode import parse

    for case, (make, reason) in ODD.items():
        raw = make().encode("utf-8", "surrogatepass")
        with pytest.raises(reference.Refused, match=None) as refused:
            reference.parse(raw)
        assert reason in str(refused.value), case
        with pytest.raises(reference.Refused):
            parse(raw)


@pytest.mark.parametrize("mode", ["skip", "overwrite"])
def test_one_voucher_under_two_zero_paddings_is_imported_once_and_the_other_copy_refused(cfg, two, mode):
    c1, _ = two
    c1.add_many(1, 2)
    c1.add(7)
    padded = c1.raw(f"movements/{DAY}/FV1-000007.json", (c1.day_folder() / "FV1-7.json").read_text())
    res = run(cfg, mode)
    assert (res.outcome, res.imported, res.refused) == ("ok", 3, 1), res.message
    assert open_refusals() == {f"movements/{DAY}/FV1-7.json": "it is FV1-7 again, under another zero-padding than "
                                                              "FV1-000007.json, which is the one imported; remove this copy"}
    # both copies changed: the voucher is updated once, its lines not doubled
    changed = voucher("CAJA1", "FV1", 7, lines=[{"product": "CAF-500", "description": "Café 500 g", "quantity": "1", "unit_price": "21000.00", "taxes": []}])
    changed["totals"] = {"base": "21000.00", "tax": "0.00", "total": "21000.00"}
    changed["payments"] = [{"method": "EF", "amount": "21000.00"}]
    for path in (padded, c1.day_folder() / "FV1-7.json"):
        path.write_text(json.dumps(changed))
    res = run(cfg, "overwrite")
    assert (res.outcome, res.updated) == ("ok", 1), res.message
    seven = Voucher.get((Voucher.code == "FV1") & (Voucher.number == 7))
    assert VoucherLine.select().where(VoucherLine.voucher == seven).count() == 1


def test_a_name_that_is_not_utf8_is_ignored_not_fatal(cfg, two, root_kind):
    if root_kind != "local":
        pytest.skip("an SMB server gives every name as UTF-16 text")
    c1, _ = two
    c1.add_many(1, 2)
    with open(os.path.join(os.fsencode(c1.day_folder()), b"a\xf1o.txt"), "wb") as f:
        f.write(b"x")
    for _ in range(2):
        res = run(cfg)
        assert res.outcome == "ok", res.message
    assert Voucher.select().count() == 2


def test_a_refused_voucher_of_a_closed_day_is_tried_again_by_the_next_pass(cfg, two):
    """The day is closed (closing.json in place) but one of its files was refused: the service's next
    passes read it again while the day is in the catch-up window, so the POS writing it again whole is
    enough, with nobody running an import by hand."""
    c1, _ = two
    c1.add(1)
    c1.add(3)
    c1.raw(f"movements/{DAY}/FV1-2.json", "{ broken")
    c1.writer.write_closing(DAY, make_closing("CAJA1", DAY, [voucher("CAJA1", "FV1", n) for n in (1, 2, 3)]))
    morning = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(14), dt.timezone.utc)
    passes.run_pass(cfg, now=morning)
    assert DAY in catchup.days("CAJA1", DAY + dt.timedelta(days=1), 7), "a day with a refused file is not done"
    c1.add(2)  # the POS writes it again, whole
    passes.run_pass(cfg, now=morning + dt.timedelta(minutes=5))
    assert sorted(v.number for v in Voucher.select().where(Voucher.code == "FV1")) == [1, 2, 3]
    assert open_refusals() == {}
    assert DAY not in catchup.days("CAJA1", DAY + dt.timedelta(days=1), 7), "and now it is"


def test_a_voucher_spoilt_then_restored_in_overwrite_mode_closes_its_refusal(cfg, two):
    c1, _ = two
    good = c1.add(1)
    run(cfg)
    text = good.read_text()
    good.write_text("{ spoilt")
    assert run(cfg, "overwrite").refused == 1
    good.write_text(text)
    res = run(cfg, "overwrite")
    assert (res.skipped, res.refused) == (1, 0) and open_refusals() == {}


@pytest.mark.parametrize("closing", ['{"codes": {"FV1": {"first": ' + "9" * 5000 + "}}}",
                                     '{"codes": ' + "[" * 100_000 + "]" * 100_000 + "}"])
def test_an_odd_closing_is_a_mismatch_that_says_why_not_an_audit_crash(cfg, two, closing):
    c1, _ = two
    c1.add(1)
    c1.raw(f"movements/{DAY}/closing.json", closing)
    run(cfg)
    [caja] = audit.audit(DAY, "CAJA1")["cajas"]
    assert caja["codes"]["FV1"]["status"] == "mismatch" and "closing.json cannot be read" in caja["problem"]
