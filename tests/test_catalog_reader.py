"""The POS's reader (`read_catalog`, docs/catalog-reader.md) on folders damaged by hand or by a disk: every
damage is a CatalogError naming the file, never another exception nor a catalog read silently wrong; and
the next push repairs such a folder."""

from __future__ import annotations

import json

import pytest
from conftest import write_config  # noqa: F401  conftest's fixtures

from syscafe_sync import catalogs, push, registry
from syscafe_sync.caja.catalog import CatalogError, read_catalog


@pytest.fixture
def pushed(cfg, caja_folder, tmp_path):
    """CAJA1 with products pushed, then one change appended to its journal."""
    c1 = caja_folder("CAJA1")
    registry.add("CAJA1", c1.url)
    csv = tmp_path / "p.csv"
    csv.write_text("code,price\nA,1.00\nB,2.00\n", encoding="utf-8")
    catalogs.load("products", csv)
    push.push(cfg, [], "partial")
    csv.write_text("code,price\nA,1.50\nB,2.00\n", encoding="utf-8")
    catalogs.load("products", csv)
    assert push.push(cfg, [], "partial").results[0].catalogs[0].mode == "partial"
    folder = c1.root / "catalogs"
    manifest = json.loads((folder / "manifest.json").read_text())
    return cfg, c1, folder, manifest


def entry(manifest: dict) -> dict:
    return manifest["catalogs"]["products"]


def rewrite_manifest(folder, manifest, **changes) -> None:
    entry(manifest).update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del entry(manifest)[k]
    (folder / "manifest.json").write_text(json.dumps(manifest))


DAMAGES = {
    "a snapshot that is a list": (lambda f, m: (f / entry(m)["snapshot"]).write_text("[]"), "is not a snapshot of records"),
    "a snapshot record without its key": (lambda f, m: (f / entry(m)["snapshot"]).write_text(
        '{"catalog": "products", "key": "code", "version": 2, "records": [{"price": "1.00"}]}'), "is not a snapshot of records"),
    "records that are a number": (lambda f, m: (f / entry(m)["snapshot"]).write_text('{"records": 5}'), "is not a snapshot of records"),
    "a snapshot nested deep": (lambda f, m: (f / entry(m)["snapshot"]).write_text("[" * 100_000 + "]" * 100_000), "is not valid JSON"),
    "the snapshot gone": (lambda f, m: (f / entry(m)["snapshot"]).unlink(), "which is not there"),
    "the journal gone": (lambda f, m: (f / entry(m)["journal"]).unlink(), "which is not there"),
    "journal_bytes below zero": (lambda f, m: rewrite_manifest(f, m, journal_bytes=-1), "says journal_bytes -1"),
    "no sha256 to check against": (lambda f, m: rewrite_manifest(f, m, sha256=None), "has no sha256"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_folder_is_a_catalog_error_and_a_total_push_repairs_it(pushed, damage):
    """A partial push trusts a manifest that is still the one it committed (it reads no snapshot back),
    so a file damaged under it is repaired by a total push, which the POS's CatalogError calls for."""
    cfg, c1, folder, manifest = pushed
    spoil, words = DAMAGES[damage]
    spoil(folder, manifest)
    with pytest.raises(CatalogError, match=None) as raised:
        read_catalog(c1.root, "products")
    assert words in str(raised.value)
    res = push.push(cfg, [], "total").results[0]
    assert res.outcome == "ok", res.message
    view = read_catalog(c1.root, "products")
    assert view.sha256 == catalogs.get("products").sha256 and view.records["A"]["price"] == "1.50"


def test_a_journal_tail_past_journal_bytes_is_never_read(pushed):
    """What a killed push appended past the manifest's journal_bytes is not the caja's catalog."""
    _, c1, folder, manifest = pushed
    with open(folder / entry(manifest)["journal"], "ab") as f:
        f.write(b'{"version": 99, "op": "upsert", "record": {"code": "A", "price": "UNCOMMITTED"}}\n')
    assert read_catalog(c1.root, "products").records["A"]["price"] == "1.50"


def test_no_manifest_is_no_catalog_yet(tmp_path):
    (tmp_path / "catalogs").mkdir()
    with pytest.raises(FileNotFoundError):
        read_catalog(tmp_path, "products")


def test_a_manifest_edited_by_hand_over_a_damaged_snapshot_gets_a_total_push_not_a_failure(pushed):
    """The partial push distrusts the manifest and reads the caja's own records for a total push; a
    snapshot it cannot read then holds none, instead of failing every later push of that caja."""
    cfg, c1, folder, manifest = pushed
    (folder / entry(manifest)["snapshot"]).write_text("[]")
    rewrite_manifest(folder, manifest, records=3)
    res = push.push(cfg, [], "partial").results[0]
    assert res.outcome == "ok" and "checksum mismatch" in res.catalogs[0].fallback, res.message
    assert read_catalog(c1.root, "products").sha256 == catalogs.get("products").sha256
