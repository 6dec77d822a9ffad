"""The main server's fast decoder must keep exactly what the reference parser keeps, and refuse
with the reference's words what it refuses (syscafe_sync/voucher_decode.py)."""

from __future__ import annotations

import copy
from decimal import Decimal
import json

import pytest
from hypothesis import given, settings, strategies as st

from syscafe_sync import voucher_decode
from syscafe_sync.caja import voucher as reference

from conftest import voucher

BASE = voucher("CAJA1", "FV1", 7, customer={"id": "1020304050", "id_type": "13", "name": "Ana Ruiz"},
               seller="V03", cashier="U07", shift="S1", loyalty={"customer": "1020304050", "earned": 48, "redeemed": 0})


def outcome(parse, raw: bytes):
    """What a parser makes of `raw`: its refusal, or the voucher as the importer takes it (header,
    rows, amounts). The reference's is made from its parsed values; the fast path builds its own."""
    try:
        p = parse(raw)
    except reference.Refused as exc:
        return ("refused", str(exc))
    if isinstance(p, reference.ParsedVoucher):
        p = voucher_decode.Decoded.of(p)
    return ("kept", p.header, p.rows, p.amounts)


def test_an_ordinary_voucher_takes_the_fast_path_and_gives_the_reference_result():
    raw = json.dumps(BASE).encode()
    fast = voucher_decode._fast(raw)  # raises if it had to defer: then the fast path would never be used
    assert outcome(lambda r: fast, raw) == outcome(reference.parse, raw)


@pytest.mark.parametrize("spelling, stored", [("16000.00", "16000.00"), (" 16000.00", "16000.00"), ("16_000", "16000"),
                                              ("1.6e4", "1.6E+4"), ("+5", "5"), ("5.", "5"), ("-0", "-0")])
def test_money_is_stored_as_decimal_writes_it_however_the_caja_spelled_it(spelling, stored):
    doc = copy.deepcopy(BASE)
    doc["lines"][0]["unit_price"] = spelling
    rows = voucher_decode.parse(json.dumps(doc).encode()).rows
    assert rows.lines[0][voucher_decode.LINE.index("unit_price")] == stored


@pytest.mark.parametrize("raw", [
    b"\xff\xfe not utf-8", b'{"format": 1, "caja": ', b"[1, 2]", b'{"format": 1}', b"null",
    json.dumps(dict(BASE, customer={})).encode(),            # Consumidor Final to the reference
    json.dumps(dict(BASE, customer={"id": None})).encode(),  # refused by the reference
    json.dumps(dict(BASE, totals=dict(BASE["totals"], total=52104.0))).encode(),
    json.dumps(dict(BASE, totals=dict(BASE["totals"], total="NaN"))).encode(),
    json.dumps(dict(BASE, number=True)).encode(),
    json.dumps(dict(BASE, payments={})).encode(),
    json.dumps(dict(BASE, issued_at="2026-11-22T14:42:10")).encode(),
    # not finite, however it is spelled: plain, padded, escaped, in a document with no other such letters
    json.dumps(dict(BASE, totals=dict(BASE["totals"], tip="\u00a0NaN"))).encode(),
    json.dumps(dict(BASE, totals=dict(BASE["totals"], tip="-INF "))).encode(),
    json.dumps(dict(BASE, totals=dict(BASE["totals"], tip="sNaN"))).encode(),
    json.dumps(dict(BASE, totals=dict(BASE["totals"], tip="NaN"))).replace('"NaN"', '"\\u004eaN"').encode(),
])
def test_corner_cases_agree_with_the_reference(raw):
    assert outcome(voucher_decode.parse, raw) == outcome(reference.parse, raw)


# Values a POS might put anywhere: the right type, the wrong one, or an odd corner.
CORNERS = [None, True, False, 0, 1, -1, 2.5, "", "0", "1.50", "-0", "1e3", " 5 ", "NaN", "Infinity", "abc",
           "2026-11-22T08:00:00-05:00", "2026-11-22T08:00:00", "active", "voided", "FV1", "CAJA1",
           {}, [], [{}], {"id": "1"}, [{"type": "IVA", "rate": "19"}], "<delete>"]
ODD = st.one_of(st.sampled_from(CORNERS), st.integers(), st.floats(), st.text(max_size=5))


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(BASE) if p]


def mutated(mutations) -> bytes:
    doc = copy.deepcopy(BASE)
    for path, value in mutations:
        parent = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
            if value == "<delete>":
                del parent[path[-1]]
            else:
                # A copy: the CORNERS ({}, [{}] …) are shared by every example, and a later mutation
                # into one of them would change it for the rest, even into a dict that holds itself.
                parent[path[-1]] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return json.dumps(doc).encode()


def test_every_field_set_to_every_corner_value_agrees_with_the_reference():
    differ = []
    for path in PATHS:
        for value in CORNERS:
            raw = mutated([(path, value)])
            if outcome(voucher_decode.parse, raw) != outcome(reference.parse, raw):
                differ.append((path, value))
    assert differ == []


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), ODD), max_size=3))
def test_any_mutations_of_a_voucher_are_kept_or_refused_exactly_as_the_reference_does(mutations):
    raw = mutated(mutations)
    assert outcome(voucher_decode.parse, raw) == outcome(reference.parse, raw)


def test_the_money_cache_stays_bounded_and_keeps_nothing_it_refused(monkeypatch):
    monkeypatch.setattr(voucher_decode._Money, "LIMIT", 3)
    money = voucher_decode._Money({None: None})
    with pytest.raises(voucher_decode._Defer):
        money["NaN"]
    with pytest.raises(voucher_decode._Defer):
        money[" 5"]  # kept by the reference, stored as "5": not the fast path's
    assert "NaN" not in money and " 5" not in money
    for text in ("1", "2.50", "3", "4"):
        assert money[text] == Decimal(text) and str(money[text]) == text
    assert len(money) <= 3 and money[None] is None
