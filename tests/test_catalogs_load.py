"""`catalogs load` / `catalogs show`: the main server's catalogs, versioned record by record (SPEC §1 "Catalogs")."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
from conftest import cli_json, run_cli


from syscafe_sync import catalogs
from syscafe_sync.caja.catalog import canonical, record_set_sha256
from syscafe_sync.db.models import Catalog, CatalogRecord
from syscafe_sync.errors import UsageError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

PRODUCTS = [
    {"code": "ALM-EJ", "description": "Almuerzo ejecutivo", "price": "16000.00", "group": "ALMUERZOS"},
    {"code": "CAF-500", "description": "Café molido 500 g", "price": "20000.00", "group": "CAFE-GRANO"},
    {"code": "TIN-TO", "description": "Tinto", "price": "2000.00", "group": "BEBIDAS"},
    {"code": "PAN-BON", "description": "Pandebono", "price": "2500.00", "group": "PANADERIA"},
]
FIELDS = ["code", "description", "price", "group"]


def write_csv(path: Path, records: list[dict], delimiter: str = ",", bom: bool = False, fields=FIELDS) -> Path:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=fields, delimiter=delimiter, lineterminator="\n")
    w.writeheader()
    w.writerows(records)
    path.write_bytes(("\ufeff" if bom else "").encode() + out.getvalue().encode("utf-8"))
    return path


def write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def versions(name: str = "products") -> dict[str, tuple[int, bool]]:
    return {r.key: (r.version, r.deleted) for r in CatalogRecord.select().where(CatalogRecord.catalog == name)}


def db_state() -> tuple:
    cats = sorted((c.name, c.key, c.version, c.records, c.sha256, c.updated_at) for c in Catalog.select())
    recs = sorted((r.catalog, r.key, r.version, r.deleted, r.data) for r in CatalogRecord.select())
    return cats, recs


def with_price(code: str, price: str) -> list[dict]:
    return [dict(p, price=price) if p["code"] == code else p for p in PRODUCTS]


# --- formats ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda d: write_csv(d / "p.csv", PRODUCTS),
    lambda d: write_csv(d / "p.csv", PRODUCTS, delimiter=";", bom=True),
    lambda d: write_csv(d / "p.csv", PRODUCTS, bom=True),
    lambda d: write_json(d / "p.json", PRODUCTS),
    lambda d: write_jsonl(d / "p.jsonl", PRODUCTS),
    lambda d: write_json(d / "p.txt", PRODUCTS),  # no known extension: told by content
    lambda d: write_jsonl(d / "p.data", PRODUCTS),
    lambda d: write_csv(d / "p", PRODUCTS, delimiter=";"),
], ids=["csv", "csv-semicolon-bom", "csv-bom", "json", "jsonl", "json-by-content", "jsonl-by-content", "csv-by-content"])
def test_every_format_loads_the_same_catalog(cfg, tmp_path, make):
    result = catalogs.load("products", make(tmp_path))
    expected = {p["code"]: canonical(p) for p in PRODUCTS}
    assert result["catalog"] == "products" and result["key"] == "code"
    assert (result["version"], result["upserts"], result["deletes"], result["unchanged"], result["records"]) == (4, 4, 0, 0, 4)
    assert catalogs.live("products") == expected
    assert Catalog.get_by_id("products").sha256 == record_set_sha256(expected)
    # versions follow the key order
    assert {k: v for k, (v, _) in versions().items()} == {"ALM-EJ": 1, "CAF-500": 2, "PAN-BON": 3, "TIN-TO": 4}


def test_csv_quoted_values_blank_lines_and_non_ascii(cfg, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('code,description,price\n\n"ALM-EJ","Almuerzo, ejecutivo ""del día""","16000.00"\n'
                    '"AJI","Ajiaco\nsantafereño",24000.00\n\nÑAME,Ñame,1.00\n', encoding="utf-8")
    catalogs.load("products", path)
    recs = {r["code"]: r for r in catalogs.show("products")["records"]}
    assert recs["ALM-EJ"]["description"] == 'Almuerzo, ejecutivo "del día"'
    assert recs["AJI"]["description"] == "Ajiaco\nsantafereño"
    assert recs["ÑAME"] == {"code": "ÑAME", "description": "Ñame", "price": "1.00"}


def test_json_null_is_kept_and_money_stays_a_string(cfg, tmp_path):
    rows = [{"id": "1020304050", "name": "Ana Ruiz", "email": None, "limit": "150000.00"}]
    catalogs.load("customers", write_jsonl(tmp_path / "c.jsonl", rows))
    assert catalogs.show("customers")["records"] == rows
    assert catalogs.live("customers") == {"1020304050": canonical(rows[0])}


# --- versions: only what changed -------------------------------------------------------------------


def test_one_changed_price_is_one_upsert_with_the_next_version(cfg, tmp_path):
    first = catalogs.load("products", write_csv(tmp_path / "p.csv", PRODUCTS))
    before = versions()
    second = catalogs.load("products", write_csv(tmp_path / "p.csv", with_price("CAF-500", "21000.00")))
    assert (second["upserts"], second["deletes"], second["unchanged"]) == (1, 0, 3)
    assert second["version"] == first["version"] + 1 == 5
    after = versions()
    assert after["CAF-500"] == (first["version"] + 1, False)
    assert {k: v for k, v in after.items() if k != "CAF-500"} == {k: v for k, v in before.items() if k != "CAF-500"}
    assert json.loads(catalogs.live("products")["CAF-500"])["price"] == "21000.00"
    assert catalogs.changes_since("products", first["version"]) == [
        (5, "CAF-500", False, canonical(dict(PRODUCTS[1], price="21000.00")))]


def test_unchanged_reload_keeps_the_version(cfg, tmp_path):
    catalogs.load("products", write_csv(tmp_path / "p.csv", PRODUCTS))
    state = db_state()
    # the same records in another order and another format are the same catalog
    again = catalogs.load("products", write_json(tmp_path / "p.json", PRODUCTS[::-1]))
    assert (again["version"], again["upserts"], again["deletes"], again["unchanged"]) == (4, 0, 0, 4)
    assert db_state() == state
    assert catalogs.changes_since("products", 4) == []


def test_a_removed_record_becomes_a_versioned_deletion(cfg, tmp_path):
    catalogs.load("products", write_csv(tmp_path / "p.csv", PRODUCTS))
    result = catalogs.load("products", write_csv(tmp_path / "p.csv", [p for p in PRODUCTS if p["code"] != "TIN-TO"]))
    assert (result["version"], result["upserts"], result["deletes"], result["unchanged"], result["records"]) == (5, 0, 1, 3, 3)
    row = CatalogRecord.get((CatalogRecord.catalog == "products") & (CatalogRecord.key == "TIN-TO"))
    assert (row.version, row.deleted, row.data) == (5, True, None)
    assert "TIN-TO" not in catalogs.live("products")
    assert catalogs.changes_since("products", 4) == [(5, "TIN-TO", True, None)]
    cat = Catalog.get_by_id("products")
    assert (cat.version, cat.records, cat.sha256) == (5, 3, record_set_sha256(catalogs.live("products")))
    with pytest.raises(UsageError, match="deleted at version 5"):
        catalogs.show("products", "TIN-TO")


def test_changes_and_deletions_in_one_load_are_numbered_in_key_order(cfg, tmp_path):
    catalogs.load("products", write_csv(tmp_path / "p.csv", PRODUCTS))
    new = [p for p in with_price("TIN-TO", "2200.00") if p["code"] != "ALM-EJ"] + [
        {"code": "AGU-600", "description": "Agua 600 ml", "price": "3000.00", "group": "EMPACADOS"}]
    result = catalogs.load("products", write_jsonl(tmp_path / "p.jsonl", new))
    assert (result["upserts"], result["deletes"], result["unchanged"], result["version"]) == (2, 1, 2, 7)
    assert [(v, k, d) for v, k, d, _ in catalogs.changes_since("products", 4)] == [
        (5, "AGU-600", False), (6, "ALM-EJ", True), (7, "TIN-TO", False)]


def test_a_deleted_record_that_comes_back_is_an_upsert_with_a_new_version(cfg, tmp_path):
    catalogs.load("products", write_csv(tmp_path / "p.csv", PRODUCTS))
    catalogs.load("products", write_csv(tmp_path / "p.csv", PRODUCTS[1:]))  # ALM-EJ deleted at 5
    back = catalogs.load("products", write_csv(tmp_path / "p.csv", PRODUCTS))
    assert (back["version"], back["upserts"], back["deletes"], back["unchanged"], back["records"]) == (6, 1, 0, 3, 4)
    assert (back["new"], back["changed"]) == (1, 0)
    row = CatalogRecord.get((CatalogRecord.catalog == "products") & (CatalogRecord.key == "ALM-EJ"))
    assert (row.version, row.deleted, json.loads(row.data)) == (6, False, PRODUCTS[0])
    assert CatalogRecord.select().where(CatalogRecord.catalog == "products").count() == 4  # one row a key
    assert catalogs.show("products", "ALM-EJ")["record_version"] == 6


def test_sha256_is_the_canonical_record_set_of_the_live_records(cfg, tmp_path):
    steps = [PRODUCTS, with_price("ALM-EJ", "17000.00"), PRODUCTS[:2], PRODUCTS[::-1]]
    for i, rows in enumerate(steps):
        catalogs.load("products", write_json(tmp_path / f"{i}.json", rows))
        live = catalogs.live("products")
        cat = catalogs.get("products")
        assert cat.sha256 == record_set_sha256(live) == record_set_sha256({r["code"]: canonical(r) for r in rows})
        assert cat.records == len(live) == len(rows)
        view_cat, view_live = catalogs.view("products")
        assert (view_cat.version, view_live) == (cat.version, live)


def test_catalogs_are_independent(cfg, tmp_path):
    catalogs.load("products", write_csv(tmp_path / "p.csv", PRODUCTS))
    catalogs.load("groups", write_csv(tmp_path / "g.csv", [{"code": "BEBIDAS", "name": "Bebidas"}], fields=["code", "name"]))
    assert catalogs.names() == ["groups", "products"]
    assert (catalogs.get("groups").version, catalogs.get("products").version) == (1, 4)
    catalogs.load("groups", write_csv(tmp_path / "g.csv", [{"code": "POSTRES", "name": "Postres"}], fields=["code", "name"]))
    assert catalogs.get("groups").version == 3 and catalogs.get("products").version == 4
    assert [k for _, k, _, _ in catalogs.changes_since("groups", 0)] == ["BEBIDAS", "POSTRES"]


def test_an_unknown_catalog_needs_a_key_once_and_keeps_it(cfg, tmp_path):
    rows = [{"sku": "X1", "price": "1.00"}, {"sku": "X2", "price": "2.00"}]
    path = write_json(tmp_path / "prices.json", rows)
    with pytest.raises(UsageError, match="--key"):
        catalogs.load("price_lists", path)
    assert catalogs.load("price_lists", path, key="sku")["key"] == "sku"
    assert catalogs.load("price_lists", path)["upserts"] == 0  # the stored key is used
    with pytest.raises(UsageError, match="keyed by 'sku'"):
        catalogs.load("price_lists", path, key="price")
    assert catalogs.load("products", write_csv(tmp_path / "p.csv", PRODUCTS), key="code")["records"] == 4


def test_getters(cfg, tmp_path):
    assert catalogs.names() == []
    with pytest.raises(UsageError, match="no catalog is loaded yet"):
        catalogs.get("products")
    catalogs.load("products", write_csv(tmp_path / "p.csv", PRODUCTS))
    assert catalogs.get("products").version == 4
    assert [v for v, *_ in catalogs.changes_since("products", 2)] == [3, 4]
    assert catalogs.changes_since("products", 0)[0] == (1, "ALM-EJ", False, canonical(PRODUCTS[0]))
    assert catalogs.live("nothing") == {} and catalogs.changes_since("nothing", 0) == []


# --- refusals: the whole file, nothing written ------------------------------------------------------

BAD = {
    # name: (file name, content, catalog, --key, words the message must hold)
    "float price in JSON": ("p.json", '[{"code": "A", "price": "1.00"},\n {"code": "B", "price": 21000.0}]', "products", None,
                            ["record 2", "line 2", "'price'", '"21000.00"']),
    "int in JSONL": ("p.jsonl", '{"code": "A", "price": "1.00"}\n{"code": "B", "stock": 5}\n', "products", None,
                     ["line 2", "'stock'", '"5"']),
    "bool in JSON": ("p.json", '[{"code": "A", "active": true}]', "products", None, ["record 1", "'active'", "boolean"]),
    "nested object": ("p.json", '[{"code": "A", "price": {"amount": "1"}}]', "products", None, ["record 1", "'price'", "object"]),
    "missing key in CSV": ("p.csv", "code,price\nA,1.00\n,2.00\n", "products", None, ["line 3", "header is line 1", "'code'", "empty"]),
    "missing key in JSONL": ("p.jsonl", '{"code": "A"}\n{"price": "2.00"}\n', "products", None, ["line 2", "'code'", "missing"]),
    "null key in JSON": ("p.json", '[{"code": null}]', "products", None, ["record 1", "'code'", "missing"]),
    "no key column in CSV": ("p.csv", "sku,price\nA,1.00\n", "products", None, ["line 1", "header", "'code'"]),
    "duplicate key": ("p.csv", "code,price\nA,1.00\nB,2.00\nA,3.00\n", "products", None, ["line 4", "line 2", "'A'", "unique"]),
    "key with spaces": ("p.csv", "code,price\n A,1.00\n", "products", None, ["line 2", "'code'", "spaces"]),
    "broken JSON": ("p.json", '[{"code": "A"},\n {"code": "B",\n', "products", None, ["line", "not valid JSON"]),
    "broken JSONL": ("p.jsonl", '{"code": "A"}\n{"code": "B"\n', "products", None, ["line 2", "not valid JSON"]),
    "JSON not an array": ("p.json", '{"code": "A"}', "products", None, ["array", ".jsonl"]),
    "JSON array of strings": ("p.json", '["A", "B"]', "products", None, ["record 1", "not a JSON object"]),
    "ragged CSV row": ("p.csv", "code,price\nA,1.00,extra\n", "products", None, ["line 2", "3 values", "2 columns"]),
    "bad CSV quoting": ("p.csv", 'code,price\n"A"x,1.00\n', "products", None, ["line 2", "not valid CSV"]),
    "duplicate CSV column": ("p.csv", "code,price,price\nA,1,2\n", "products", None, ["line 1", "'price' twice"]),
    "not UTF-8": ("p.csv", "code,description\nA,Caf\xe9\n".encode("latin-1"), "products", None, ["line 2", "UTF-8"]),
    "empty file": ("p.csv", "", "products", None, ["empty"]),
    "blank file": ("p.jsonl", "\n  \n", "products", None, ["empty"]),
    "header only": ("p.csv", "code,price\n", "products", None, ["no records"]),
    "empty JSON array": ("p.json", "[]", "products", None, ["no records"]),
    "unknown catalog without --key": ("x.csv", "code\nA\n", "price_lists", None, ["'price_lists'", "--key"]),
    "wrong --key for a known catalog": ("p.csv", "sku\nA\n", "products", "sku", ["'products'", "keyed by 'code'", "'sku'"]),
    "bad catalog name": ("p.csv", "code\nA\n", "Products", None, ["'Products'", "lowercase"]),
    "catalog name with a dot": ("p.csv", "code\nA\n", "../products", None, ["'../products'"]),
    "catalog name too long": ("p.csv", "code\nA\n", "a" * 41, None, ["'" + "a" * 41 + "'"]),
    "a number of 5,000 digits in JSON": ("p.json", '[{"code": "A"},\n {"code": "B", "price": ' + "9" * 5000 + "}]", "products", None,
                                         ["record 2", "line 2", "thousands of digits"]),
    "a number of 5,000 digits in JSONL": ("p.jsonl", '{"code": "A", "price": ' + "9" * 5000 + "}\n", "products", None,
                                          ["line 1", "thousands of digits"]),
    "JSON nested 100,000 deep": ("p.json", '[{"code": "A", "x": ' + "[" * 100_000 + "]" * 100_000 + "}]", "products", None,
                                 ["record 1", "nested thousands of levels deep"]),
    "JSONL nested 100,000 deep": ("p.jsonl", '{"code": "A", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "products", None,
                                  ["line 1", "nested thousands of levels deep"]),
    "half of a character in a value": ("p.jsonl", '{"code": "A", "description": "Caf\\ud83d"}\n', "products", None,
                                       ["line 1", "'description'", "half of a character", "\\ud83d"]),
    "half of a character in the key": ("p.json", '[{"code": "\\udc80x"}]', "products", None, ["record 1", "'code'", "half of a character"]),
    "a field given twice": ("p.jsonl", '{"code": "A", "code": "B", "price": "1.00"}\n', "products", None,
                            ["line 1", "'code' is given twice"]),
    "a NUL in the key": ("p.jsonl", '{"code": "A\\u0000B"}\n', "products", None, ["line 1", "'code'", "NUL"]),
}


def _bad_file(tmp_path: Path, case: str) -> tuple[Path, str, str | None, list[str]]:
    file_name, content, name, key, words = BAD[case]
    path = tmp_path / "bad" / file_name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path, name, key, words


@pytest.fixture
def loaded(cfg, tmp_path):
    """products at version 4 and a price_lists catalog, so a refusal has something to leave alone."""
    catalogs.load("products", write_csv(tmp_path / "p.csv", PRODUCTS))
    catalogs.load("price_lists", write_json(tmp_path / "pl.json", [{"sku": "X1", "price": "1.00"}]), key="sku")
    return db_state()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_are_refused_whole_naming_row_and_field(loaded, tmp_path, case):
    path, name, key, words = _bad_file(tmp_path, case)
    if case == "unknown catalog without --key":
        name = "other_list"  # price_lists is loaded and keeps its key; a new name needs one
        words = ["'other_list'", "--key"]
    with pytest.raises(UsageError) as err:
        catalogs.load(name, path, key)
    message = str(err.value)
    for word in words:
        assert word in message, (word, message)
    assert "\n" not in message
    assert db_state() == loaded


def test_a_bad_row_at_the_end_loads_nothing_of_a_big_file(loaded, tmp_path):
    rows = [{"code": f"P{i:05d}", "price": "1.00"} for i in range(3000)] + [{"code": "", "price": "2.00"}]
    path = write_csv(tmp_path / "big.csv", rows, fields=["code", "price"])
    with pytest.raises(UsageError, match=r"line 3002 \(the header is line 1\)"):
        catalogs.load("products", path)
    assert db_state() == loaded


def test_a_jsonl_string_may_hold_line_separators_as_they_are(loaded, tmp_path):
    """U+2028 and U+0085 inside a JSON string, as json.dumps(ensure_ascii=False) writes them, end no JSONL line."""
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"code": "A", "description": "una\u2028dos"}, ensure_ascii=False) + "\n"
                    + json.dumps({"code": "B", "description": "tres\x85cuatro"}, ensure_ascii=False) + "\n", encoding="utf-8")
    catalogs.load("products", path)
    assert json.loads(catalogs.live("products")["A"])["description"] == "una\u2028dos"


def test_missing_file_is_refused(loaded, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        catalogs.load("products", tmp_path / "nope.csv")
    with pytest.raises(UsageError, match="folder"):
        catalogs.load("products", tmp_path)
    assert db_state() == loaded


# --- show -------------------------------------------------------------------------------------------


def test_show_shapes(loaded):
    out = catalogs.show("products")
    assert {k: out[k] for k in ("catalog", "key", "version")} == {"catalog": "products", "key": "code", "version": 4}
    assert out["records"] == sorted(PRODUCTS, key=lambda p: p["code"])
    one = catalogs.show("products", "TIN-TO")
    assert (one["catalog"], one["key"], one["version"], one["records"], one["record"], one["record_version"]) == (
        "products", "code", 4, [PRODUCTS[2]], PRODUCTS[2], 4)
    with pytest.raises(UsageError, match="no record with code 'NOPE'"):
        catalogs.show("products", "NOPE")
    with pytest.raises(UsageError, match="the loaded ones are: price_lists, products"):
        catalogs.show("groups")


# --- the command line -------------------------------------------------------------------------------


def one_error_line(proc) -> str:
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_cli_load_show_and_log(home, tmp_path):
    path = write_csv(tmp_path / "products.csv", PRODUCTS)
    out = cli_json(home, "catalogs", "load", "products", str(path))
    assert {k: out[k] for k in ("catalog", "key", "version", "upserts", "deletes", "unchanged", "records")} == {
        "catalog": "products", "key": "code", "version": 4, "upserts": 4, "deletes": 0, "unchanged": 0, "records": 4}
    write_csv(path, with_price("CAF-500", "21000.00"))
    text = run_cli(home, "catalogs", "load", "products", str(path), check=0).stdout
    assert "version 4 → 5" in text and "1 upserts" in text
    shown = cli_json(home, "catalogs", "show", "products")
    assert (shown["catalog"], shown["key"], shown["version"]) == ("products", "code", 5)
    assert [r["code"] for r in shown["records"]] == ["ALM-EJ", "CAF-500", "PAN-BON", "TIN-TO"]
    assert shown["records"][1]["price"] == "21000.00"
    one = cli_json(home, "catalogs", "show", "products", "CAF-500")
    assert (one["record"]["price"], one["record_version"], one["records"]) == ("21000.00", 5, [one["record"]])
    table = run_cli(home, "catalogs", "show", "products", check=0).stdout
    assert "products: version 5, 4 records" in table and "Café molido 500 g" in table and "21000.00" in table
    single = run_cli(home, "catalogs", "show", "products", "TIN-TO", check=0).stdout
    assert "version 4" in single and "Tinto" in single
    logged = [json.loads(x) for x in run_cli(home, "--json", "log", "--action", "catalogs load", check=0).stdout.splitlines()]
    assert [r["outcome"] for r in logged] == ["ok", "ok"]
    assert "version 4 → 5" in logged[1]["message"]
    assert [(r["imported"], r["updated"], r["skipped"]) for r in logged] == [(4, 0, 0), (0, 1, 3)]


@pytest.mark.parametrize("case", ["float price in JSON", "duplicate key", "missing key in CSV", "broken JSON", "empty file",
                                  "unknown catalog without --key", "wrong --key for a known catalog", "bad catalog name"])
def test_cli_refusals_exit_2_change_nothing_and_are_logged(home, tmp_path, case):
    cli_json(home, "catalogs", "load", "products", str(write_csv(tmp_path / "p.csv", PRODUCTS)))
    before = cli_json(home, "catalogs", "show", "products")
    path, name, key, words = _bad_file(tmp_path, case)
    proc = run_cli(home, "catalogs", "load", name, str(path), *(["--key", key] if key else []), check=2)
    line = one_error_line(proc)
    for word in words:
        assert word in line, (word, line)
    assert proc.stdout == ""
    assert cli_json(home, "catalogs", "show", "products") == before
    logged = [json.loads(x) for x in run_cli(home, "--json", "log", "--action", "catalogs load", check=0).stdout.splitlines()]
    assert [r["outcome"] for r in logged] == ["ok", "refused"]
    assert logged[1]["message"] in line


def test_cli_show_refusals(home, tmp_path):
    line = one_error_line(run_cli(home, "catalogs", "show", "products", check=2))
    assert "'products' is not loaded" in line and "catalogs load" in line
    cli_json(home, "catalogs", "load", "groups", str(write_csv(tmp_path / "g.csv", [{"code": "B", "name": "Bebidas"}], fields=["code", "name"])))
    assert "the loaded ones are: groups" in one_error_line(run_cli(home, "catalogs", "show", "products", check=2))
    assert "no record with code 'X'" in one_error_line(run_cli(home, "catalogs", "show", "groups", "X", check=2))
    assert "does not exist" in one_error_line(run_cli(home, "catalogs", "load", "groups", str(tmp_path / "none.csv"), check=2))
    logged = [json.loads(x) for x in run_cli(home, "--json", "log", "--level", "warning", check=0).stdout.splitlines()]
    assert [(r["action"], r["outcome"]) for r in logged] == [("catalogs show", "refused")] * 3 + [("catalogs load", "refused")]


def test_cli_help(home):
    for args in (["catalogs", "--help"], ["catalogs", "load", "--help"], ["catalogs", "show", "--help"]):
        assert "Usage:" in run_cli(home, *args, check=0).stdout


# --- the fixture catalogs ---------------------------------------------------------------------------


def test_the_fixture_catalogs_load_and_match_the_fixture_vouchers(home):
    expected = {"products": ("code", 17), "groups": ("code", 6), "taxes": ("code", 3), "payment_methods": ("code", 5),
                "sellers": ("code", 4), "customers": ("id", 6)}
    files = sorted((FIXTURES / "catalogs").iterdir())
    assert len(files) == len(expected)
    for f in files:
        out = cli_json(home, "catalogs", "load", f.name.split(".")[0], str(f))
        assert (out["key"], out["records"], out["upserts"]) == (expected[out["catalog"]][0], expected[out["catalog"]][1], out["records"])
    shown = {name: cli_json(home, "catalogs", "show", name) for name in expected}
    products = {p["code"]: p for p in shown["products"]["records"]}
    methods = {m["code"] for m in shown["payment_methods"]["records"]}
    sellers = {s["code"] for s in shown["sellers"]["records"]}
    customers = {c["id"]: c for c in shown["customers"]["records"]}
    taxes = {(t["type"], t["rate"]) for t in shown["taxes"]["records"]}
    groups = {g["code"] for g in shown["groups"]["records"]}
    assert methods == {"EF", "NEQUI", "DAVIPLATA", "TD", "TC"}  # the ';' + BOM file read right
    assert customers["52345678"]["email"] is None  # JSONL null kept
    seen = 0
    for path in sorted(FIXTURES.glob("CAJA*/movements/*/*.json")):
        try:
            v = json.loads(path.read_text("utf-8"))
        except json.JSONDecodeError:
            continue  # the truncated file, there on purpose
        if "lines" not in v:
            continue  # closing.json
        seen += 1
        for line in v["lines"]:
            assert line["product"] in products, (path, line["product"])
            p = products[line["product"]]
            assert (p["description"], p["price"]) == (line["description"], line["unit_price"])
            assert all((t["type"], t["rate"]) == (p["tax_type"], p["tax_rate"]) for t in line["taxes"])
        assert {pay["method"] for pay in v["payments"]} <= methods
        assert v.get("seller") is None or v["seller"] in sellers
        if "customer" in v:
            assert v["customer"]["id"] in customers
    assert seen > 50
    assert all(p["group"] in groups and (p["tax_type"], p["tax_rate"]) in taxes for p in products.values())


# --- size -------------------------------------------------------------------------------------------


def _big(n: int, changed: set[int] = frozenset()) -> list[dict]:
    return [{"code": f"P{i:06d}", "description": f"Producto número {i}", "group": f"G{i % 40:02d}",
             "price": f"{(1000 + i * 7 % 90000) + (1 if i in changed else 0)}.00", "tax_type": "INC", "tax_rate": "8", "unit": "UND"}
            for i in range(n)]


def test_50000_products_load_and_reload_quickly(cfg, tmp_path):
    fields = ["code", "description", "group", "price", "tax_type", "tax_rate", "unit"]
    path = write_csv(tmp_path / "big.csv", _big(50_000), fields=fields)
    started = time.perf_counter()
    first = catalogs.load("products", path)
    load_s = time.perf_counter() - started
    assert (first["records"], first["version"]) == (50_000, 50_000)
    changed = {7, 1234, 20000, 20001, 33333, 40000, 41000, 45000, 49998, 49999}
    write_csv(path, _big(50_000, changed), fields=fields)
    started = time.perf_counter()
    second = catalogs.load("products", path)
    reload_s = time.perf_counter() - started
    assert (second["upserts"], second["unchanged"], second["version"]) == (10, 49_990, 50_010)
    assert [k for _, k, _, _ in catalogs.changes_since("products", 50_000)] == sorted(f"P{i:06d}" for i in changed)
    assert catalogs.get("products").sha256 == record_set_sha256(catalogs.live("products"))
    print(f"\n50,000 products: load {load_s:.2f}s, reload with 10 changed {reload_s:.2f}s")
    assert load_s < 10 and reload_s < 10  # generous: shared CI machines; a couple of seconds on a laptop


# --- PostgreSQL -------------------------------------------------------------------------------------


def test_postgresql_load_versions_refusal_and_show(tmp_path, pg_url):  # noqa: F811
    home = tmp_path / "home"
    cli_json(home, "--db", pg_url, "init")
    path = write_csv(tmp_path / "p.csv", PRODUCTS)
    assert cli_json(home, "--db", pg_url, "catalogs", "load", "products", str(path))["version"] == 4
    write_csv(path, [p for p in with_price("CAF-500", "21000.00") if p["code"] != "TIN-TO"])
    out = cli_json(home, "--db", pg_url, "catalogs", "load", "products", str(path))
    assert (out["version"], out["upserts"], out["deletes"], out["unchanged"], out["records"]) == (6, 1, 1, 2, 3)
    shown = cli_json(home, "--db", pg_url, "catalogs", "show", "products")
    assert [r["code"] for r in shown["records"]] == ["ALM-EJ", "CAF-500", "PAN-BON"]
    expected = {r["code"]: canonical(r) for r in shown["records"]}
    assert out["sha256"] == record_set_sha256(expected)
    bad, name, _key, words = _bad_file(tmp_path, "float price in JSON")
    line = one_error_line(run_cli(home, "--db", pg_url, "catalogs", "load", name, str(bad), check=2))
    assert all(w in line for w in words)
    assert cli_json(home, "--db", pg_url, "catalogs", "show", "products") == shown
    big = write_csv(tmp_path / "big.csv", _big(5000), fields=["code", "description", "group", "price", "tax_type", "tax_rate", "unit"])
    out = cli_json(home, "--db", pg_url, "catalogs", "load", "products", str(big))
    assert (out["upserts"], out["deletes"], out["records"]) == (5000, 3, 5000)
