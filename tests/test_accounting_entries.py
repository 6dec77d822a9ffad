"""Journal lines of one voucher (pure, no database): balanced to the cent for any valid voucher,
held naming what is missing, reversed for notes; day summaries balanced."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syscafe_sync.accounting import entries as E
from syscafe_sync.accounting.mapping import Mapping
from syscafe_sync.caja.voucher import parse
from syscafe_sync.caja.writer import make_voucher

BOGOTA = dt.timezone(dt.timedelta(hours=-5))
WHEN = dt.datetime(2026, 11, 22, 12, 30, tzinfo=BOGOTA)
# product: (group, taxes as the POS writes them)
PRODUCTS = {
    "ALM-EJ": ("ALMUERZOS", [{"type": "INC", "rate": "8"}]),
    "GAS-400": ("EMPACADOS", [{"type": "IVA", "rate": "19"}]),
    "CAF-500": ("CAFE-GRANO", [{"type": "IVA", "rate": "5"}]),
    "AGUA-EXENTA": ("EMPACADOS", []),  # exempt: no tax at all
    "LIBRO": ("OTROS", [{"type": "IVA", "rate": "0"}]),  # excluded, written as a 0 % tax
}
GROUPS = {p: g for p, (g, _) in PRODUCTS.items()}
METHODS = ("EF", "NEQUI", "DAVIPLATA", "TD", "TC")
MAPPING = Mapping(
    payment_method={m: f"1105{i:02}" for i, m in enumerate(METHODS)},
    tax={"INC 8": "249505", "IVA 19": "24080501", "IVA 5": "24080502"},
    group={"ALMUERZOS": "414005", "EMPACADOS": "413524", "CAFE-GRANO": "413525", "OTROS": "413599"},
    caja={"CAJA1": "CC-01"},
    account={"receivable": "130505", "tips": "281505"},
)

money = st.decimals(min_value=Decimal("0"), max_value=Decimal("500000"), places=2)
quantity = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("40"), places=3)


@st.composite
def line(draw):
    product = draw(st.sampled_from(sorted(PRODUCTS)))
    q, price = draw(quantity), draw(money)
    gross = (q * price).quantize(Decimal("0.01"), rounding="ROUND_DOWN")  # a discount never above the line
    discount = draw(st.decimals(min_value=Decimal("0"), max_value=gross, places=2)) if gross > 0 else Decimal("0")
    return {"product": product, "description": product, "quantity": str(q), "unit_price": str(price),
            "discount": str(discount), "taxes": PRODUCTS[product][1]}


def split(draw, total: Decimal) -> list[tuple[str, str]]:
    """Payments in whole cents that add up to exactly `total`."""
    cents = int(total * 100)
    cuts = sorted(draw(st.lists(st.integers(0, cents), max_size=3)))
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, cents])]
    return [(draw(st.sampled_from(METHODS)), str(Decimal(p) / 100)) for p in parts]


@st.composite
def voucher(draw, kind="pos_invoice"):
    lines = draw(st.lists(line(), min_size=1, max_size=6))
    tip = draw(st.sampled_from([Decimal("0"), Decimal("0"), draw(money)]))
    draft = make_voucher("CAJA1", "FV1", 1, WHEN, lines, None, tip=tip, kind=kind)
    payments = split(draw, Decimal(draft["totals"]["total"]))
    customer = draw(st.sampled_from([None, {"id": "1020304050", "name": "Ana Ruiz"}]))
    doc = make_voucher("CAJA1", "FV1", 1, WHEN, lines, payments, tip=tip, kind=kind, customer=customer)
    return E.VoucherView.from_parsed(parse(json.dumps(doc).encode()), "2026-11-22")


@settings(max_examples=300, deadline=None)
@given(voucher())
def test_any_valid_sale_gives_balanced_lines_to_the_cent(v):
    lines = E.target(v, MAPPING, GROUPS)
    debit, credit = E.totals(lines)
    assert debit == credit == v.total
    for x in lines:
        assert x["debit"] >= 0 and x["credit"] >= 0 and (x["debit"] == 0) != (x["credit"] == 0)
        assert x["debit"] == x["debit"].quantize(E.CENT) and x["credit"] == x["credit"].quantize(E.CENT)
        assert x["cost_centre"] == "CC-01"
        assert x["third_party"] == (v.customer_id or "222222222222")
    # cash and bank accounts take exactly what was paid, each method its own account
    for method in {m for m, _ in v.payments}:
        paid = sum(a for m, a in v.payments if m == method)
        assert sum(x["debit"] for x in lines if x["account"] == MAPPING.payment_method[method]) == paid


@settings(max_examples=150, deadline=None)
@given(voucher(kind="credit_note"))
def test_a_credit_note_is_the_sale_with_debits_and_credits_swapped(note):
    sale = E.VoucherView(**{**note.__dict__, "kind": "pos_invoice"})
    assert E.target(note, MAPPING, GROUPS) == E.reverse(E.target(sale, MAPPING, GROUPS))
    debit, credit = E.totals(E.target(note, MAPPING, GROUPS))
    assert debit == credit == note.total


@settings(max_examples=100, deadline=None)
@given(st.lists(voucher(), min_size=1, max_size=8), st.data())
def test_a_day_summary_balances_and_nets_each_account(vouchers, data):
    all_lines = []
    for v in vouchers:
        lines = E.target(v, MAPPING, GROUPS)
        # some of the day's vouchers were voided after posting: their reversal is in the day too
        if data.draw(st.booleans()):
            all_lines += E.reverse(lines)
        all_lines += lines
    summary = E.summarise(all_lines, "CAJA1 2026-11-22 summary")
    debit, credit = E.totals(summary)
    assert debit == credit
    keys = [(x["account"], x["cost_centre"], x["third_party"]) for x in summary]
    assert len(keys) == len(set(keys))  # one line per account, cost centre and third party
    for key in set(keys):
        net = sum(x["debit"] - x["credit"] for x in all_lines if (x["account"], x["cost_centre"], x["third_party"]) == key)
        assert sum(x["debit"] - x["credit"] for x in summary if (x["account"], x["cost_centre"], x["third_party"]) == key) == net


def _view(**kw) -> E.VoucherView:
    lines = kw.pop("lines", [{"product": "ALM-EJ", "description": "a", "quantity": "2", "unit_price": "16000.00",
                              "taxes": [{"type": "INC", "rate": "8"}]},
                             {"product": "CAF-500", "description": "c", "quantity": "1", "unit_price": "20000.00",
                              "taxes": [{"type": "IVA", "rate": "5"}]}])
    doc = make_voucher(kw.pop("caja", "CAJA1"), "FV1", 7, WHEN, lines, kw.pop("payments", None), **kw)
    return E.VoucherView.from_parsed(parse(json.dumps(doc).encode()), "2026-11-22")


def test_held_names_every_missing_mapping_and_posts_nothing():
    partial = Mapping(payment_method={"EF": "110505"}, tax={"INC 8": "249505"}, group={"ALMUERZOS": "414005"}, caja={})
    v = _view(payments=[("EF", "20000.00"), ("NEQUI", "38760.00")], tip="3200.00")
    with pytest.raises(E.Held) as held:
        E.target(v, partial, GROUPS)
    assert held.value.reasons == [
        "no cost centre for caja CAJA1 (cajas.CAJA1)",
        "no income account for group CAFE-GRANO (groups.CAFE-GRANO, product CAF-500)",
        'no account for tax IVA 5 (taxes."IVA 5")',
        "no account for tips (accounts.tips)",
        "no account for payment method NEQUI (payment_methods.NEQUI)",
    ]


def test_a_product_outside_the_catalog_is_held():
    v = _view(lines=[{"product": "NUEVO", "description": "n", "quantity": "1", "unit_price": "1000.00"}])
    with pytest.raises(E.Held, match="product NUEVO \\(line 1\\) is not in the products catalog"):
        E.target(v, MAPPING, GROUPS)


def test_unpaid_part_goes_to_the_receivable_or_holds_without_one():
    v = _view(payments=[("EF", "10000.00")], customer={"id": "79876543", "name": "Carlos"})
    lines = E.target(v, MAPPING, GROUPS)
    receivable = [x for x in lines if x["account"] == "130505"]
    assert receivable == [{"account": "130505", "cost_centre": "CC-01", "third_party": "79876543",
                           "description": "FV1-7 unpaid", "debit": Decimal("45560.00"), "credit": Decimal("0")}]
    no_receivable = Mapping(**{**MAPPING.__dict__, "account": {"tips": "281505"}})
    with pytest.raises(E.Held, match="45560.00 is unpaid and there is no receivable account"):
        E.target(v, no_receivable, GROUPS)


def test_payments_above_the_total_and_a_wrong_total_are_held():
    v = _view(payments=[("EF", "60000.00")])
    with pytest.raises(E.Held, match="payments 60000.00 exceed what was sold, 55560.00"):
        E.target(v, MAPPING, GROUPS)
    v = _view()
    v.total = Decimal("55000.00")
    with pytest.raises(E.Held, match="totals.total 55000.00 is not lines \\+ taxes \\+ tip = 55560.00"):
        E.target(v, MAPPING, GROUPS)


def test_a_voided_voucher_contributes_nothing_and_needs_no_mapping():
    assert E.target(_view(status="voided"), Mapping(), {}) == []


def test_another_kind_is_held_not_guessed():
    with pytest.raises(E.Held, match="kind cash_out is not posted automatically"):
        E.target(_view(kind="cash_out"), MAPPING, GROUPS)
