"""A small, realistic, deterministic Colombian demo company: three cajas, two days, its catalogs.

    python -m syscafe_sync.demo_company DEST [--replace]

Everything derives from a fixed seed and fixed dates (never the clock), so two
builds are byte-for-byte identical; tests rebuild it to guard `fixtures/`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import random
import shutil
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from .caja import layout
from .caja.writer import CajaWriter, make_closing, make_voucher

COMPANY = "Café La Esquina S.A.S."
NIT = "900123456-7"
TIMEZONE = "America/Bogota"
# Colombia keeps -05:00 all year; a fixed offset needs no tz database.
BOGOTA = dt.timezone(dt.timedelta(hours=-5))
DAYS = (dt.date(2026, 11, 20), dt.date(2026, 11, 21))  # a Friday and a Saturday
SEED = 20261120

CAJAS = {
    "CAJA1": {"codes": ["FV1", "NC1"], "first": 1001, "prefix": "POS1", "cashiers": ("U01", "U02")},
    "CAJA2": {"codes": ["FV2", "NC2"], "first": 1501, "prefix": "POS2", "cashiers": ("U03", "U04")},
    "CAJA3": {"codes": ["FV3", "NC3"], "first": 2001, "prefix": "POS3", "cashiers": ("U05", "U06")},
}
FIRST_NOTE = 101
SELLERS = ("V01", "V02", "V03", "V04")
CUSTOMERS = (
    ("1020304050", "Ana Ruiz"), ("52345678", "María Fernanda Gómez"),
    ("79876543", "Carlos Andrés Pérez"), ("1032456789", "Juan David Rodríguez"),
    ("43210987", "Luz Marina Ospina"), ("1144055667", "Santiago Castaño"),
)

# code: (description, unit price COP, group, tax type, rate, quantities offered)
PRODUCTS = {
    "ALM-EJ": ("Almuerzo ejecutivo", "16000.00", "ALMUERZOS", "INC", "8", ("1", "1", "2", "3")),
    "AJI-SAN": ("Ajiaco santafereño", "24000.00", "ALMUERZOS", "INC", "8", ("1", "1", "2")),
    "BAN-PAI": ("Bandeja paisa", "28000.00", "ALMUERZOS", "INC", "8", ("1", "1", "2")),
    "TIN-TO": ("Tinto", "2000.00", "BEBIDAS", "INC", "8", ("1", "1", "2", "3")),
    "CAF-LEC": ("Café con leche", "4500.00", "BEBIDAS", "INC", "8", ("1", "1", "2")),
    "CAP-CHI": ("Capuchino", "6500.00", "BEBIDAS", "INC", "8", ("1", "2")),
    "JUG-NAT": ("Jugo natural en agua", "7000.00", "BEBIDAS", "INC", "8", ("1", "1", "2", "3")),
    "EMP-CAR": ("Empanada de carne", "3500.00", "PANADERIA", "INC", "8", ("1", "2", "3", "4")),
    "PAN-BON": ("Pandebono", "2500.00", "PANADERIA", "INC", "8", ("1", "2", "3", "4")),
    "ARE-QUE": ("Arepa con queso", "6000.00", "PANADERIA", "INC", "8", ("1", "1", "2")),
    "POS-TRE": ("Postre de tres leches", "8500.00", "POSTRES", "INC", "8", ("1", "1", "2")),
    "CER-AGU": ("Cerveza Águila 330 ml", "5500.00", "EMPACADOS", "IVA", "19", ("1", "2", "2", "4")),
    "GAS-400": ("Gaseosa 400 ml", "4000.00", "EMPACADOS", "IVA", "19", ("1", "1", "2")),
    "AGU-600": ("Agua sin gas 600 ml", "3000.00", "EMPACADOS", "IVA", "19", ("1", "2")),
    "CHO-JET": ("Chocolatina Jet", "2500.00", "EMPACADOS", "IVA", "19", ("1", "2", "3")),
    "CAF-500": ("Café molido 500 g", "20000.00", "CAFE-GRANO", "IVA", "5", ("1", "1", "2")),
    "CAF-GRA": ("Café en grano a granel (kg)", "38000.00", "CAFE-GRANO", "IVA", "5", ("0.25", "0.5", "1")),
}
MENUS = {  # what sells at which hour
    "breakfast": ("TIN-TO", "CAF-LEC", "CAP-CHI", "PAN-BON", "EMP-CAR", "ARE-QUE", "JUG-NAT", "CAF-500", "AGU-600"),
    "lunch": ("ALM-EJ", "ALM-EJ", "AJI-SAN", "BAN-PAI", "JUG-NAT", "GAS-400", "POS-TRE", "TIN-TO", "CAF-GRA"),
    "afternoon": ("CAP-CHI", "TIN-TO", "POS-TRE", "EMP-CAR", "PAN-BON", "GAS-400", "CHO-JET", "CAF-500", "ALM-EJ"),
    "evening": ("CER-AGU", "CER-AGU", "EMP-CAR", "GAS-400", "POS-TRE", "CHO-JET", "CAF-GRA", "AGU-600"),
}
OTHER_METHODS = ("NEQUI", "DAVIPLATA", "TD", "TC")

RULE_HH = {
    "format": 1, "id": "R-HH-ALM", "name": "Almuerzos happy hour", "type": "percent_discount",
    "priority": 0, "active": True, "version": 3, "updated_at": "2026-11-20T10:00:00-05:00",
    "conditions": {"group": ["ALMUERZOS"], "weekdays": [1, 2, 3, 4, 5],
                   "time": {"from": "14:00", "to": "16:00"}},
    "action": {"percent": "10", "max_amount": "5000.00"},
    "valid_from": "2026-11-01", "valid_to": "2026-12-31",
}
RULE_COMBO = {
    "format": 1, "id": "R-COMBO-DES", "name": "Combo desayuno: tinto + pandebono",
    "type": "combo_price", "priority": 1, "active": True, "version": 1,
    "updated_at": "2026-11-15T08:00:00-05:00",
    "conditions": {"products": ["TIN-TO", "PAN-BON"], "time": {"from": "07:00", "to": "10:30"}},
    "action": {"price": "4000.00"}, "valid_from": "2026-11-15", "valid_to": "2027-01-31",
}
RULE_BEER = {
    "format": 1, "id": "R-CERV-2X1", "name": "Cerveza 2x1 fin de semana", "type": "buy_x_get_y",
    "priority": 0, "active": True, "version": 2, "updated_at": "2026-11-18T17:30:00-05:00",
    "conditions": {"products": ["CER-AGU"], "weekdays": [4, 5, 6], "time": {"from": "18:00", "to": "21:00"}},
    "action": {"buy": "2", "free": "1"}, "valid_from": "2026-11-01", "valid_to": "2026-11-30",
}
# R-HH-ALM is at two cajas with the same id, version and content: not a conflict.
RULES = {"CAJA1": (RULE_HH, RULE_COMBO), "CAJA2": (RULE_HH,), "CAJA3": (RULE_BEER,)}

VOIDED_AT = ("CAJA2", DAYS[1], 2)
LOST = ("CAJA3", DAYS[1])  # (caja, day) of the one voucher sold but never written (see _build_day)
SHORT_PAID = ("CAJA1", DAYS[1])  # (caja, day) of the one voucher whose payments fall short of its total  # (caja, day, index in the day) of the one voided voucher
REDEEM_POINTS = 20
WRONG_CODE_NUMBER = 9001  # far above every FV1 number, so it never shadows a real voucher
TEMP_LEFTOVER = ("CAJA1", "FV1", 1010)
# The DIAN numbering resolution of each invoice code: code: (prefix, first, last, valid from, valid to, number).
RESOLUTIONS = {
    "FV1": ("POS1", 1001, 6000, dt.date(2026, 2, 2), dt.date(2027, 2, 2), "18764061518441"),
    "FV2": ("POS2", 1501, 6500, dt.date(2026, 2, 2), dt.date(2027, 2, 2), "18764061518442"),
    "FV3": ("POS3", 2001, 7000, dt.date(2026, 2, 2), dt.date(2027, 2, 2), "18764061518443"),
}


def _slot(t: dt.time) -> str:
    if t.hour < 11:
        return "breakfast"
    if t.hour < 14:
        return "lunch"
    return "afternoon" if t.hour < 18 else "evening"


def _discount(caja: str, code: str, qty: Decimal, when: dt.datetime) -> Decimal:
    """What the caja's own rules take off a line, so vouchers agree with rules/."""
    desc, price, group, *_ = PRODUCTS[code]
    gross = qty * Decimal(price)
    t = when.strftime("%H:%M")
    if caja in ("CAJA1", "CAJA2") and group == "ALMUERZOS" and when.isoweekday() <= 5 \
            and "14:00" <= t < "16:00":
        return min(gross * Decimal("0.10"), Decimal("5000.00"))
    if caja == "CAJA3" and code == "CER-AGU" and when.isoweekday() in (4, 5, 6) \
            and "18:00" <= t < "21:00":
        return (qty // 2) * Decimal(price)
    return Decimal("0")


def _line(caja: str, code: str, qty: str, when: dt.datetime) -> dict:
    desc, price, _group, tax, rate, _q = PRODUCTS[code]
    return {"product": code, "description": desc, "quantity": qty, "unit_price": price,
            "discount": _discount(caja, code, Decimal(qty), when),
            "taxes": [{"type": tax, "rate": rate}]}


def _payments(rng: random.Random, total: Decimal) -> list[tuple[str, Decimal]]:
    r = rng.random()
    if r < 0.4:
        return [("EF", total)]
    if r < 0.65:
        return [(rng.choice(OTHER_METHODS), total)]
    cash = Decimal(rng.randint(1, max(1, int(total // 10000)))) * 10000
    if cash >= total:
        return [("EF", total)]
    return [("EF", cash), (rng.choice(OTHER_METHODS), total - cash)]


class _Caja:
    """One caja's running state across days: next numbers, ledger seq, points."""

    def __init__(self, name: str, root: Path) -> None:
        self.name, self.conf = name, CAJAS[name]
        self.writer = CajaWriter(root)
        self.next_number = self.conf["first"]
        self.next_seq = 1
        self.points: dict[str, int] = {}
        self.vouchers: dict[dt.date, list[dict]] = {}

    def shift(self, when: dt.datetime) -> tuple[str, str]:
        n = 1 if when.hour < 14 else 2
        return f"{self.name}-{when.date().isoformat()}-{n}", self.conf["cashiers"][n - 1]

    def sell(self, rng: random.Random, when: dt.datetime, *, voided: bool,
             customer: tuple[str, str] | None, redeem: int = 0) -> tuple[dict, list[dict]]:
        menu = MENUS[_slot(when.time())]
        codes = rng.sample(sorted(set(menu)), rng.randint(1, 4))
        lines = [_line(self.name, c, rng.choice(PRODUCTS[c][5]), when) for c in codes]
        shift, cashier = self.shift(when)
        common = dict(kind="pos_invoice", prefix=self.conf["prefix"], shift=shift,
                      cashier=cashier, seller=rng.choice(SELLERS),
                      status="voided" if voided else "active")
        code, number = self.conf["codes"][0], self.next_number
        self.next_number += 1
        draft = make_voucher(self.name, code, number, when, lines, None, **common)
        tip = Decimal("0")
        if any(PRODUCTS[c][2] == "ALMUERZOS" for c in codes) and rng.random() < 0.5:
            # Propina voluntaria: 10 % of the base, to the nearest 100 pesos.
            tip = (Decimal(draft["totals"]["base"]) / 1000).quantize(1, ROUND_HALF_UP) * 100
        total = Decimal(draft["totals"]["total"]) + tip
        payments = _payments(rng, total)
        entries, loyalty, cust = [], None, None
        if customer:
            cust = {"id": customer[0], "id_type": "13", "name": customer[1]}
            earned = int(Decimal(draft["totals"]["base"]) // 1000)
            loyalty = {"customer": customer[0], "earned": earned, "redeemed": redeem}
            entries = self._ledger(customer[0], earned, redeem, f"{code}-{number}", when)
        doc = make_voucher(self.name, code, number, when, lines, payments, tip=tip,
                           customer=cust, loyalty=loyalty, **common)
        return doc, entries

    def _ledger(self, customer: str, earned: int, redeem: int, voucher: str,
                when: dt.datetime) -> list[dict]:
        entries = []
        for kind, points in (("earn", earned), ("redeem", -redeem)):
            if points:
                entries.append({"seq": self.next_seq, "customer": customer, "kind": kind,
                                "points": points, "voucher": voucher, "at": when.isoformat()})
                self.next_seq += 1
                self.points[customer] = self.points.get(customer, 0) + points
        return entries


def _credit_note(caja: _Caja, day: dt.date) -> dict:
    """NC1 returning one unit of an undiscounted line of an earlier FV1 sale."""
    for v in caja.vouchers[DAYS[0]]:
        if v["status"] != "active" or "customer" in v:
            continue
        for line in v["lines"]:
            if line["discount"] == "0.00" and "." not in line["quantity"]:
                when = dt.datetime.combine(day, dt.time(10, 15), BOGOTA)
                shift, cashier = caja.shift(when)
                ret = {k: line[k] for k in ("product", "description", "unit_price")}
                ret.update(quantity="1", taxes=[{k: t[k] for k in ("type", "rate")}
                                                for t in line["taxes"]])
                return make_voucher(
                    caja.name, caja.conf["codes"][1], FIRST_NOTE, when, [ret], None,
                    kind="credit_note", prefix=caja.conf["prefix"], shift=shift,
                    cashier=cashier, seller=v.get("seller"),
                    references=[{"code": v["code"], "number": v["number"]}])
    raise RuntimeError("no FV1 line fit for the demo credit note")


def _build_day(caja: _Caja, rng: random.Random, day: dt.date) -> list[dict]:
    n = rng.randint(6, 12)
    seconds = sorted(rng.sample(range(7 * 3600, 21 * 3600), n))
    vouchers, entries = [], []
    for i, s in enumerate(seconds):
        when = dt.datetime.combine(day, dt.time(s // 3600, s // 60 % 60, s % 60), BOGOTA)
        voided = (caja.name, day, i) == VOIDED_AT
        customer = None if voided or rng.random() >= 0.4 else rng.choice(CUSTOMERS)
        redeem = 0
        if caja.name == "CAJA1" and day == DAYS[1] and i == 0:
            # The demo's one redeem: the best customer of day one comes back.
            best = max(sorted(caja.points), key=lambda c: caja.points[c])
            customer = next(c for c in CUSTOMERS if c[0] == best)
            redeem = min(REDEEM_POINTS, caja.points[best])
        doc, new_entries = caja.sell(rng, when, voided=voided, customer=customer, redeem=redeem)
        vouchers.append(doc)
        entries += new_entries
    caja.vouchers[day] = vouchers
    if caja.name == "CAJA1" and day == DAYS[1]:
        vouchers.append(_credit_note(caja, day))
    if (caja.name, day) == SHORT_PAID:
        # A cashier keys 100 pesos less on the card than the total: imported, with a finding.
        doc = next(v for v in vouchers[3:] if len(v["payments"]) == 2 and v["status"] == "active")
        doc["payments"][1]["amount"] = str(Decimal(doc["payments"][1]["amount"]) - 100)
    lost = None
    if (caja.name, day) == LOST:
        # Sold and counted in closing.json, but its file never reached the folder (a POS that
        # lost it): `audit` names it missing, and the main server does not invent it.
        lost = next(v for v in vouchers[3:] if "customer" not in v and v["status"] == "active")
    written = [doc for doc in vouchers if doc is not lost]
    for doc in written:
        caja.writer.write_voucher(doc)
    caja.writer.append_loyalty(day, entries)
    caja.writer.write_closing(day, make_closing(caja.name, day, vouchers))
    return written


def _raw(path: Path, data: bytes) -> None:
    # Bad files bypass the writer on purpose: they show what readers refuse.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _voucher_bytes(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"


def _bad_files(dest: Path, cajas: dict[str, _Caja]) -> list[dict]:
    day = DAYS[1]
    c3, c2, c1 = cajas["CAJA3"], cajas["CAJA2"], cajas["CAJA1"]
    # The sale after the day's last good one, cut off mid-write by a POS crash.
    when = dt.datetime.fromisoformat(c3.vouchers[day][-1]["issued_at"]) + dt.timedelta(seconds=97)
    lines = [_line("CAJA3", "EMP-CAR", "2", when), _line("CAJA3", "GAS-400", "1", when)]
    broken = make_voucher("CAJA3", "FV3", c3.next_number, when, lines, None, prefix="POS3")
    data = _voucher_bytes(broken)
    p1 = dest / "CAJA3" / layout.day_folder(day) / layout.voucher_name("FV3", c3.next_number)
    _raw(p1, data[: len(data) * 3 // 5])

    when = dt.datetime.combine(day, dt.time(12, 30, 5), BOGOTA)
    stray = make_voucher("CAJA2", "FV1", WRONG_CODE_NUMBER, when,
                         [_line("CAJA2", "ALM-EJ", "1", when)], None, prefix="POS2",
                         shift=c2.shift(when)[0], cashier=c2.shift(when)[1], seller="V02")
    p2 = dest / "CAJA2" / layout.day_folder(day) / layout.voucher_name("FV1", WRONG_CODE_NUMBER)
    _raw(p2, _voucher_bytes(stray))

    _, code, number = TEMP_LEFTOVER
    final = next(c1.writer.root / layout.day_folder(d) / layout.voucher_name(code, number)
                 for d in DAYS if any(v["number"] == number and v["code"] == code
                                      for v in c1.vouchers[d]))
    p3 = final.parent / layout.temp_name(final.name)
    _raw(p3, final.read_bytes()[:200])  # a rewrite killed mid-way

    rel = lambda p: p.relative_to(dest).as_posix()  # noqa: E731
    return [
        {"path": rel(p1), "refused_for": "unreadable: truncated JSON"},
        {"path": rel(p2), "refused_for": "code FV1 is registered to CAJA1, not CAJA2"},
        {"path": rel(p3), "refused_for": "none: a temp name, ignored by every reader"},
    ]


# --- catalogs: the main server's master data, as files for `syscafe-sync catalogs load` -------------

CATALOGS_DIR = "catalogs"
GROUPS = {
    "ALMUERZOS": "Almuerzos", "BEBIDAS": "Bebidas", "PANADERIA": "Panadería",
    "POSTRES": "Postres", "EMPACADOS": "Empacados", "CAFE-GRANO": "Café en grano",
}
# code: (type, rate, name); type and rate as the vouchers' taxes carry them
TAXES = {
    "INC8": ("INC", "8", "Impuesto nacional al consumo 8 %"),
    "IVA19": ("IVA", "19", "IVA 19 %"),
    "IVA5": ("IVA", "5", "IVA 5 %"),
}
# code: (name, kind); EF plus OTHER_METHODS, the methods the vouchers are paid with
PAYMENT_METHODS = {
    "EF": ("Efectivo", "cash"), "NEQUI": ("Nequi", "wallet"), "DAVIPLATA": ("Daviplata", "wallet"),
    "TD": ("Tarjeta débito", "card"), "TC": ("Tarjeta crédito", "card"),
}
SELLER_NAMES = {"V01": "Diana Marcela López", "V02": "Jhon Fredy Restrepo",
                "V03": "Paola Andrea Cárdenas", "V04": "Édgar Mauricio Villa"}
CUSTOMER_EMAILS = {"1020304050": "ana.ruiz@example.com", "79876543": "carlos.perez@example.com",
                   "1144055667": "santiago.castano@example.com"}
UNITS = {"CAF-GRA": "KG"}  # every other product sells by the unit (UND)


def _csv_bytes(header: list[str], rows: list[list[str]], delimiter: str = ",", bom: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" if bom else "").encode("utf-8") + out.getvalue().encode("utf-8")


def catalog_files() -> dict[str, tuple[str, str, bytes]]:
    """{catalog: (file name, key, bytes)}: one file per format `catalogs load` reads."""
    tax_code = {(t, r): code for code, (t, r, _) in TAXES.items()}
    products = [[code, desc, group, price, tax, rate, UNITS.get(code, "UND")]
                for code, (desc, price, group, tax, rate, _q) in PRODUCTS.items()]
    assert all((p[4], p[5]) in tax_code and p[2] in GROUPS for p in products)
    sellers = [{"code": code, "name": name, "active": "true"} for code, name in SELLER_NAMES.items()]
    customers = [{"id": cid, "id_type": "13", "name": name, "email": CUSTOMER_EMAILS.get(cid)} for cid, name in CUSTOMERS]
    return {
        "products": ("products.csv", "code", _csv_bytes(
            ["code", "description", "group", "price", "tax_type", "tax_rate", "unit"], products)),
        "groups": ("groups.csv", "code", _csv_bytes(["code", "name"], [[c, n] for c, n in GROUPS.items()])),
        "taxes": ("taxes.csv", "code", _csv_bytes(
            ["code", "type", "rate", "name"], [[c, t, r, n] for c, (t, r, n) in TAXES.items()])),
        # As a spreadsheet in Spanish saves it: ';' between values, a UTF-8 BOM first.
        "payment_methods": ("payment_methods.csv", "code", _csv_bytes(
            ["code", "name", "kind"], [[c, n, k] for c, (n, k) in PAYMENT_METHODS.items()], delimiter=";", bom=True)),
        "sellers": ("sellers.json", "code",
                    json.dumps(sellers, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"),
        "customers": ("customers.jsonl", "id",
                      b"".join(json.dumps(c, ensure_ascii=False).encode("utf-8") + b"\n" for c in customers)),
    }


def build_catalogs(dest: Path) -> dict:
    """Writes DEST/catalogs/: the company's catalogs, one file each, for `catalogs load NAME FILE`.

    Plain files for a person to load, not a caja's catalogs/ folder (only a push writes that).
    Returns {catalog: {"file", "key", "records"}}.
    """
    folder = Path(dest) / CATALOGS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name, (file_name, key, data) in catalog_files().items():
        (folder / file_name).write_bytes(data)
        records = {"products": PRODUCTS, "groups": GROUPS, "taxes": TAXES, "payment_methods": PAYMENT_METHODS,
                   "sellers": SELLER_NAMES, "customers": CUSTOMERS}[name]
        summary[name] = {"file": f"{CATALOGS_DIR}/{file_name}", "key": key, "records": len(records)}
    return summary


ACCOUNTING_FILE = "accounting.toml"
# The company's mapping to the PUC (the Colombian chart of accounts), for `accounting map load`.
ACCOUNTING_TOML = """\
# Café La Esquina S.A.S. (NIT 900123456-7): where the cajas' sales post in the PUC.
# Load it with: syscafe-sync accounting map load accounting.toml   (docs/accounting.md)

[payment_methods]
EF = "110505"           # Caja general
NEQUI = "11100501"      # Bancolombia cuenta corriente: Nequi settles there
DAVIPLATA = "11100502"  # Davivienda cuenta de ahorros
TD = "11100501"         # cards settle at Bancolombia
TC = "11100501"

[taxes]
"INC 8" = "249505"      # Impuesto nacional al consumo por pagar
"IVA 19" = "24080501"   # IVA generado 19 %
"IVA 5" = "24080502"    # IVA generado 5 %

[groups]
ALMUERZOS = "41400501"  # Restaurante: almuerzos
BEBIDAS = "41400502"    # Restaurante: bebidas
PANADERIA = "41400503"  # Restaurante: panadería
POSTRES = "41400504"    # Restaurante: postres
EMPACADOS = "41352401"  # Comercio: productos empacados
CAFE-GRANO = "41352402" # Comercio: café en grano

[cajas]
CAJA1 = "CC-01"
CAJA2 = "CC-02"
CAJA3 = "CC-03"

[accounts]
receivable = "130505"   # Clientes nacionales: what a sale leaves unpaid
tips = "28150501"       # Propinas: received for the staff, not income
"""


def build(dest: Path, *, replace: bool = False) -> dict:
    """Writes DEST/CAJA1..CAJA3, DEST/catalogs/ and DEST/accounting.toml, and returns a summary.

    Refuses to write over existing caja folders unless `replace`, since the
    loyalty ledgers are appended to and would double.
    """
    dest = Path(dest)
    existing = [dest / name for name in (*CAJAS, CATALOGS_DIR) if (dest / name).exists()]
    if existing and not replace:
        raise FileExistsError(f"{existing[0]} exists; pass replace=True (--replace)")
    for path in existing:
        shutil.rmtree(path)
    rng = random.Random(SEED)
    cajas = {name: _Caja(name, dest / name) for name in CAJAS}
    counts: dict[str, dict[str, int]] = {}
    for name, caja in cajas.items():
        caja.writer.write_caja_json(name, caja.conf["codes"], NIT, TIMEZONE)
        for rule in RULES[name]:
            caja.writer.write_rule(rule)
        counts[name] = {d.isoformat(): len(_build_day(caja, rng, d)) for d in DAYS}
    (dest / ACCOUNTING_FILE).write_text(ACCOUNTING_TOML, encoding="utf-8")
    return {
        "company": COMPANY, "nit": NIT, "timezone": TIMEZONE,
        "cajas": list(CAJAS), "days": [d.isoformat() for d in DAYS],
        "vouchers": counts,
        "loyalty_entries": {n: c.next_seq - 1 for n, c in cajas.items()},
        "rules": {n: [r["id"] for r in RULES[n]] for n in CAJAS},
        "bad_files": _bad_files(dest, cajas),
        "catalogs": build_catalogs(dest),
        "accounting": ACCOUNTING_FILE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syscafe_sync.demo_company",
                                     description="Writes the demo company's caja folders and catalog files.")
    parser.add_argument("dest", type=Path, help="folder that will hold CAJA1, CAJA2, CAJA3 and catalogs/")
    parser.add_argument("--replace", action="store_true",
                        help="delete and rewrite DEST/CAJA1..CAJA3 and DEST/catalogs if they exist")
    args = parser.parse_args(argv)
    try:
        summary = build(args.dest, replace=args.replace)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
