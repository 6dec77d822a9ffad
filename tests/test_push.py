"""Catalog push: every mode read back with SPEC's reader, fallbacks, dry runs, and pushes killed at any instant."""

from __future__ import annotations

import csv
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pgtest
from conftest import cli_json, db_rows, run_cli, write_config

from syscafe_sync import catalogs, push, registry, synclog
from syscafe_sync.caja.catalog import CatalogError, read_catalog
from syscafe_sync.db.models import CajaCatalogs

pytestmark = pytest.mark.both_roots  # each test on local folders and on smb:// roots (conftest.py)


def write_products(path: Path, prices: dict[str, str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["code", "description", "price"])
        for code, price in sorted(prices.items()):
            w.writerow([code, f"Producto {code}", price])
    return path


@pytest.fixture
def shop(cfg, caja_folder, tmp_path):
    """Two registered cajas and a loaded products catalog of 50 records."""
    c1, c2 = caja_folder("CAJA1"), caja_folder("CAJA2")
    registry.add("CAJA1", c1.url)
    registry.add("CAJA2", c2.url)
    prices = {f"P{i:03d}": f"{1000 + i}.00" for i in range(50)}
    catalogs.load("products", write_products(tmp_path / "p.csv", prices))
    return cfg, c1, c2, prices, tmp_path


def reload(tmp_path: Path, prices: dict[str, str]) -> None:
    catalogs.load("products", write_products(tmp_path / "p.csv", prices))


def main_sha() -> str:
    return catalogs.get("products").sha256


def caja_only_p001(cfg, prices: dict[str, str], tmp: Path) -> dict[str, str]:
    """Pushes, then makes P001 a record only CAJA1 has (deleted on the main server, kept by a total push)."""
    run(cfg)
    without_p001 = {k: v for k, v in prices.items() if k != "P001"}
    reload(tmp, without_p001)
    run(cfg, "total", "CAJA1")
    return without_p001


def named(folder: Path, key: str) -> Path:
    """The file the caja's manifest names for products' `key` (snapshot or journal)."""
    return folder / json.loads((folder / "manifest.json").read_text())["catalogs"]["products"][key]


def manifest_names(root: Path) -> set[str]:
    """manifest.json and the files it names."""
    entries = json.loads((root / "catalogs" / "manifest.json").read_text())["catalogs"].values()
    return {"manifest.json"} | {e[k] for e in entries for k in ("snapshot", "journal")}


def run(cfg, mode="partial", *names, dry_run=False):
    return {r.caja: r for r in push.push(cfg, list(names), mode, dry_run).results}


def test_first_partial_push_falls_back_to_total_and_reads_back_equal(shop):
    cfg, c1, c2, prices, _ = shop
    res = run(cfg)
    [out] = res["CAJA1"].catalogs
    assert (out.mode, out.fallback) == ("total", "no manifest at the caja (first push, or its catalogs folder was wiped)")
    for c in (c1, c2):
        view = read_catalog(c.root, "products")
        assert view.sha256 == main_sha() and view.version == catalogs.get("products").version
        assert {k: r["price"] for k, r in view.records.items()} == prices


def test_partial_appends_only_the_changes(shop):
    cfg, c1, _, prices, tmp = shop
    run(cfg)
    folder = c1.root / "catalogs"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    prices = dict(prices, P007="9999.00", P008="8888.00")
    del prices["P009"]
    reload(tmp, prices)
    res = run(cfg, "partial", "CAJA1")["CAJA1"]
    [out] = res.catalogs
    assert (out.mode, out.upserts, out.deletes, out.fallback) == ("partial", 2, 1, None)
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    snapshot = next(n for n in before if n.endswith(".snapshot.json"))
    journal = next(n for n in before if n.endswith(".journal.jsonl"))
    assert after[snapshot] == before[snapshot]
    lines = [json.loads(line) for line in after[journal].splitlines()]
    assert [(line["op"], line.get("key") or line["record"]["code"]) for line in lines] == [
        ("upsert", "P007"), ("upsert", "P008"), ("delete", "P009")]
    assert res.bytes_written < 4096
    view = read_catalog(c1.root, "products")
    assert view.sha256 == main_sha() and "P009" not in view.records and view.records["P007"]["price"] == "9999.00"


def test_total_keeps_records_only_the_caja_has_and_replace_drops_them(shop):
    cfg, c1, _, prices, tmp = shop
    run(cfg)
    reload(tmp, {k: v for k, v in prices.items() if k != "P001"})
    [out] = run(cfg, "total", "CAJA1")["CAJA1"].catalogs
    assert (out.mode, out.upserts) == ("total", 49), "the main server's records; the one the caja keeps is not upserted"
    view = read_catalog(c1.root, "products")
    assert "P001" in view.records and len(view.records) == 50
    assert view.sha256 == read_catalog(c1.root, "products").sha256  # its manifest's checksum holds
    # A partial push afterwards keeps that caja-only record and its checksum right.
    reload(tmp, {k: (v if k != "P002" else "1.00") for k, v in prices.items() if k != "P001"})
    [out] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert (out.mode, out.upserts) == ("partial", 1)
    view = read_catalog(c1.root, "products")
    assert "P001" in view.records and view.records["P002"]["price"] == "1.00"
    [out] = run(cfg, "replace", "CAJA1")["CAJA1"].catalogs
    view = read_catalog(c1.root, "products")
    assert out.mode == "replace" and "P001" not in view.records and view.sha256 == main_sha()


def test_replace_counts_the_records_the_caja_loses_as_its_dry_run_does(shop):
    """deletes: the records a reader at the caja saw before the replace and does not see after it, known
    from the main server (records only the caja has) or, when it cannot know, read back from the caja."""
    cfg, c1, c2, prices, tmp = shop
    without_p001 = caja_only_p001(cfg, prices, tmp)  # CAJA1 alone keeps P001
    run(cfg, "partial", "CAJA2")  # CAJA2 drops it, as the main server did
    dry = run(cfg, "replace", dry_run=True)
    assert [dry[c].catalogs[0].lose for c in ("CAJA1", "CAJA2")] == [["P001"], []]
    res = run(cfg, "replace")
    assert [(res[c].catalogs[0].upserts, res[c].catalogs[0].deletes) for c in ("CAJA1", "CAJA2")] == [(49, 1), (49, 0)]
    assert "(+49 -1)" in res["CAJA1"].message
    # Deleted on the main server since the cajas' version: the main server no longer has their data.
    fewer = {k: v for k, v in without_p001.items() if k not in ("P003", "P004")}
    reload(tmp, fewer)
    assert run(cfg, "replace", "CAJA1", dry_run=True)["CAJA1"].catalogs[0].lose == ["P003", "P004"]
    [out] = run(cfg, "replace", "CAJA1")["CAJA1"].catalogs
    assert (out.upserts, out.deletes) == (47, 2)
    # A manifest that is not the one the main server committed: what its reader sees is counted.
    manifest = c2.root / "catalogs" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"format": 1,', '"format": 1, "edited": true,'))
    assert len(read_catalog(c2.root, "products").records) == 49
    [out] = run(cfg, "replace", "CAJA2")["CAJA2"].catalogs
    assert (out.upserts, out.deletes) == (47, 2)
    assert len(read_catalog(c2.root, "products").records) == 47
    row = synclog.SyncLog.select().where(synclog.SyncLog.caja == "CAJA2").order_by(synclog.SyncLog.id.desc()).get()
    assert json.loads(row.details)["catalogs"][0]["deletes"] == 2


def test_total_keeps_the_cajas_own_records_from_what_the_main_server_knows_without_reading_them(shop):
    cfg, c1, _, prices, tmp = shop
    without_p001 = caja_only_p001(cfg, prices, tmp)
    folder = c1.root / "catalogs"
    snapshot = named(folder, "snapshot")
    # Damaged so that reading it back would find nothing: only what the main server knows can keep P001.
    snapshot.write_bytes(b" " * snapshot.stat().st_size)
    reload(tmp, dict(without_p001, P002="2.00"))  # a price change, no deletion
    [out] = run(cfg, "total", "CAJA1")["CAJA1"].catalogs
    view = read_catalog(c1.root, "products")
    assert (out.mode, out.fallback) == ("total", None)
    assert "P001" in view.records and view.records["P002"]["price"] == "2.00" and len(view.records) == 50
    # A deletion since the caja's version: its data is gone from the main server, so the caja is read.
    reload(tmp, {k: v for k, v in without_p001.items() if k != "P003"} | {"P002": "2.00"})
    run(cfg, "total", "CAJA1")
    view = read_catalog(c1.root, "products")
    assert {"P001", "P003"} <= set(view.records) and len(view.records) == 50


def test_dry_run_writes_nothing_and_says_what_would_change(shop):
    cfg, c1, _, prices, tmp = shop
    run(cfg)
    reload(tmp, dict({k: v for k, v in prices.items() if k != "P003"}, P004="1.00", NEW="5.00"))
    folder = c1.root / "catalogs"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    [out] = run(cfg, "replace", "CAJA1", dry_run=True)["CAJA1"].catalogs
    assert (out.gain, out.change, out.lose) == (["NEW"], ["P004"], ["P003"])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert read_catalog(c1.root, "products").records["P003"]


def test_a_dry_run_that_would_compact_the_journal_writes_nothing(shop):
    """A journal of 51 entries and 50 more changes: past COMPACT_MIN, a partial push would fold it into a
    new snapshot; its dry run says what would change and leaves the folder and the database as they were."""
    cfg, c1, _, prices, tmp = shop
    run(cfg)
    reload(tmp, dict(prices, P001="1.00"))
    run(cfg)
    reload(tmp, {k: "2.00" for k in prices})
    assert run(cfg)["CAJA1"].catalogs[0].mode == "partial"
    reload(tmp, {k: "3.00" for k in prices})
    folder = c1.root / "catalogs"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    state = CajaCatalogs.get(CajaCatalogs.caja == "CAJA1")
    res = run(cfg, "partial", "CAJA1", dry_run=True)["CAJA1"]
    [out] = res.catalogs
    assert (out.mode, out.upserts, out.deletes) == ("compact", 50, 0)
    assert sorted(out.change) == sorted(prices) and res.bytes_written == 0
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    after = CajaCatalogs.get(CajaCatalogs.caja == "CAJA1")
    assert (after.manifest_sha, after.pending_sha, after.manifest) == (state.manifest_sha, state.pending_sha, state.manifest)
    [real] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert real.mode == "compact" and read_catalog(c1.root, "products").sha256 == main_sha()


def test_a_wiped_catalogs_folder_gets_a_total_push(shop):
    cfg, c1, _, _, _ = shop
    run(cfg)
    for p in (c1.root / "catalogs").iterdir():
        p.unlink()
    [out] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert out.mode == "total" and "no manifest" in out.fallback
    assert read_catalog(c1.root, "products").sha256 == main_sha()


@pytest.mark.parametrize("cut", ["shortened", "deleted"])
def test_a_journal_cut_at_the_caja_gets_a_total_push_and_the_caja_reads_whole_again(shop, cut):
    cfg, c1, _, prices, tmp = shop
    run(cfg)
    reload(tmp, dict(prices, P020="1.00"))
    run(cfg, "partial", "CAJA1")  # the journal now holds one line
    journal = named(c1.root / "catalogs", "journal")
    if cut == "shortened":
        journal.write_bytes(journal.read_bytes()[:10])
    else:
        journal.unlink()
    reload(tmp, dict(prices, P020="1.00", P021="2.00"))
    [dry] = run(cfg, "partial", "CAJA1", dry_run=True)["CAJA1"].catalogs
    assert dry.mode == "total" and "is shorter than its manifest says" in dry.fallback
    [out] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert out.mode == "total" and f"{journal.name} is shorter than its manifest says" in out.fallback
    assert ("holds 10 bytes" if cut == "shortened" else "is missing") in out.fallback
    view = read_catalog(c1.root, "products")
    assert view.sha256 == main_sha() and view.records["P021"]["price"] == "2.00"
    [again] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert again.mode == "unchanged"


def test_a_cut_journal_keeps_the_records_only_the_caja_has(shop):
    cfg, c1, _, prices, tmp = shop
    without_p001 = caja_only_p001(cfg, prices, tmp)
    reload(tmp, dict(without_p001, P002="2.00"))
    run(cfg, "partial", "CAJA1")
    journal = named(c1.root / "catalogs", "journal")
    journal.write_bytes(journal.read_bytes()[:10])
    reload(tmp, dict(without_p001, P002="2.00", P003="3.00"))
    [out] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert out.mode == "total" and "is shorter than its manifest says" in out.fallback
    view = read_catalog(c1.root, "products")
    assert view.records["P001"]["price"] == prices["P001"] and view.records["P003"]["price"] == "3.00"
    assert len(view.records) == 50


def test_a_manifest_changed_by_hand_is_not_trusted(shop):
    cfg, c1, _, prices, tmp = shop
    run(cfg)
    manifest = c1.root / "catalogs" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"updated_at"', '"updated_at_"'))
    reload(tmp, dict(prices, P010="1.00"))
    [out] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert out.mode == "total" and "checksum mismatch" in out.fallback
    assert read_catalog(c1.root, "products").sha256 == main_sha()


def test_a_manifest_committed_but_not_recorded_is_adopted(shop):
    """A push killed between the manifest's rename and the database's record of it."""
    cfg, c1, _, prices, tmp = shop
    run(cfg)
    first = CajaCatalogs.get(CajaCatalogs.caja == "CAJA1")
    reload(tmp, dict(prices, P011="1.00"))
    run(cfg, "partial", "CAJA1")
    second = CajaCatalogs.get(CajaCatalogs.caja == "CAJA1")
    CajaCatalogs.update(manifest=first.manifest, manifest_sha=first.manifest_sha, extras=first.extras,
                        pending_manifest=second.manifest, pending_sha=second.manifest_sha,
                        pending_extras=second.extras).where(CajaCatalogs.caja == "CAJA1").execute()
    reload(tmp, dict(prices, P011="1.00", P012="2.00"))
    [out] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert (out.mode, out.upserts, out.fallback) == ("partial", 1, None)
    assert read_catalog(c1.root, "products").sha256 == main_sha()


@pytest.mark.skipif(pgtest.mode() != "pg", reason="PostgreSQL only: reads the transaction id (xmin) that wrote each row")
def test_a_push_is_logged_in_the_transaction_that_records_its_commit(shop):
    """A push killed after its commit is recorded has its log row, and no log row says ok for a push
    whose commit was rolled back: both are written, with the lease's release, in one transaction."""
    cfg, _, _, prices, tmp = shop
    run(cfg)
    reload(tmp, dict(prices, P011="1.00"))
    assert run(cfg, "partial", "CAJA1")["CAJA1"].outcome == "ok"
    [(commit_tx, log_tx, lease_tx)] = db_rows(cfg.home, (
        "select (select xmin from caja_catalogs where caja = 'CAJA1'), "
        "(select xmin from sync_log where caja = 'CAJA1' and action = 'catalogs push' order by id desc limit 1), "
        "(select xmin from lease where name = 'catalogs:CAJA1')"))
    assert commit_tx == log_tx == lease_tx


def test_files_replaced_by_a_push_are_deleted_by_the_next_one(shop):
    cfg, c1, _, prices, tmp = shop
    run(cfg)
    folder = c1.root / "catalogs"
    old = {p.name for p in folder.iterdir()}
    reload(tmp, dict(prices, P013="1.00"))
    run(cfg, "total", "CAJA1")
    after_first = {p.name for p in folder.iterdir()}
    assert old <= after_first and after_first != old  # a reader that read the old manifest still finds its files
    (folder / "by-hand.txt").write_text("not ours")  # SPEC: catalogs/ is the main server's alone
    [out] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert out.mode == "unchanged"
    assert {p.name for p in folder.iterdir()} == manifest_names(c1.root)
    assert read_catalog(c1.root, "products").sha256 == main_sha()


@pytest.mark.parametrize("damage", ["deleted", "cut", "edited"])
def test_a_snapshot_damaged_under_its_manifest_gets_a_total_push_even_with_nothing_changed(shop, damage):
    """The manifest is still the one the main server committed, so only the files it names tell: a
    partial push that trusted it would leave the POS without the catalog for good."""
    cfg, c1, c2, prices, tmp = shop
    run(cfg)
    reload(tmp, dict(prices, P030="3.00"))
    run(cfg)  # a journal line on top of the snapshot
    snapshot = named(c1.root / "catalogs", "snapshot")
    if damage == "deleted":
        snapshot.unlink()
    elif damage == "cut":
        snapshot.write_bytes(snapshot.read_bytes()[:100])
    else:
        snapshot.write_text(snapshot.read_text().replace("1010.00", "1.00"))
    with pytest.raises(CatalogError):
        read_catalog(c1.root, "products")
    [dry] = run(cfg, "partial", "CAJA1", dry_run=True)["CAJA1"].catalogs
    assert dry.mode == "total" and snapshot.name in dry.fallback
    res = run(cfg)
    [out] = res["CAJA1"].catalogs
    said = "is missing" if damage == "deleted" else "were written" if damage == "edited" else "holds 100 bytes"
    assert out.mode == "total" and f"catalogs/{snapshot.name} " in out.fallback and said in out.fallback
    assert res["CAJA2"].catalogs[0].mode == "unchanged"  # the other caja is whole: nothing to do there
    view = read_catalog(c1.root, "products")
    assert view.sha256 == main_sha() and view.records["P030"]["price"] == "3.00"
    [row] = synclog.query(caja="CAJA1", action="catalogs push", limit=1)
    assert row.level == "warning" and snapshot.name in row.message
    [again] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert again.mode == "unchanged"
    assert snapshot.name not in {p.name for p in (c1.root / "catalogs").iterdir()}


def test_a_damaged_snapshot_keeps_the_records_only_the_caja_has(shop):
    cfg, c1, _, prices, tmp = shop
    caja_only_p001(cfg, prices, tmp)
    named(c1.root / "catalogs", "snapshot").unlink()
    [out] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert out.mode == "total" and "is missing" in out.fallback
    view = read_catalog(c1.root, "products")
    assert view.records["P001"]["price"] == prices["P001"] and len(view.records) == 50


def test_a_journal_cut_with_nothing_to_append_gets_a_total_push(shop):
    cfg, c1, _, prices, tmp = shop
    run(cfg)
    reload(tmp, dict(prices, P020="1.00"))
    run(cfg, "partial", "CAJA1")
    journal = named(c1.root / "catalogs", "journal")
    journal.write_bytes(b"")
    [out] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert out.mode == "total" and "holds 0 bytes" in out.fallback
    assert read_catalog(c1.root, "products").records["P020"]["price"] == "1.00"


def test_what_a_push_cut_off_before_its_manifest_wrote_is_deleted_by_the_next_one(shop):
    cfg, c1, _, prices, tmp = shop
    run(cfg)
    folder = c1.root / "catalogs"
    before = {p.name for p in folder.iterdir()}
    reload(tmp, dict(prices, P014="1.00"))
    version = catalogs.get("products").version
    # The snapshot is written, then its empty journal cannot be: the push stops before any manifest.
    blocker = folder / f".products.{version}.journal.jsonl.tmp"
    blocker.mkdir()
    r = run(cfg, "total", "CAJA1")["CAJA1"]
    blocker.rmdir()
    assert r.outcome == "failed", r.message
    orphan = f"products.{version}.snapshot.json"
    assert {p.name for p in folder.iterdir()} == before | {orphan}
    assert read_catalog(c1.root, "products").version < version  # the caja still reads the old catalog
    [out] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
    assert out.mode == "partial"
    names = {p.name for p in folder.iterdir()}
    assert orphan not in names and names == before
    assert read_catalog(c1.root, "products").sha256 == main_sha()


def test_a_manifest_that_cannot_be_read_fails_the_push_naming_it_and_the_caja_is_not_called_unreachable(shop):
    cfg, c1, c2, _, _ = shop
    (c1.root / "catalogs" / "manifest.json").mkdir(parents=True)  # answered, but not a file
    res = run(cfg)
    assert res["CAJA1"].outcome == "failed", res["CAJA1"].message
    assert "manifest.json" in res["CAJA1"].message and "the caja stays on its previous catalogs" in res["CAJA1"].message
    assert res["CAJA2"].outcome == "ok"
    [row] = [r for r in synclog.query(caja="CAJA1", action="catalogs push")]
    assert (row.outcome, row.level) == ("failed", "error")


def test_a_long_journal_is_compacted_into_a_new_snapshot(shop):
    cfg, c1, _, prices, tmp = shop
    run(cfg)
    for round_ in range(12):
        prices = {k: (f"{round_}{v}" if i < 10 else v) for i, (k, v) in enumerate(sorted(prices.items()))}
        reload(tmp, prices)
        [out] = run(cfg, "partial", "CAJA1")["CAJA1"].catalogs
        if out.mode == "compact":
            break
    assert out.mode == "compact", "a journal past its threshold was never compacted"
    manifest = json.loads((c1.root / "catalogs" / "manifest.json").read_text())
    assert manifest["catalogs"]["products"]["journal_bytes"] == 0
    assert read_catalog(c1.root, "products").sha256 == main_sha()


def test_an_unreachable_caja_is_reported_and_the_other_served(shop):
    cfg, c1, _, _, _ = shop
    registry.edit("CAJA1", root=c1.url + "-gone")  # a folder beside it that does not exist
    res = run(cfg)
    assert res["CAJA1"].outcome == "unreachable" and res["CAJA2"].outcome == "ok"


def test_reader_refuses_a_damaged_catalog(shop):
    cfg, c1, _, _, _ = shop
    run(cfg)
    snapshot = next((c1.root / "catalogs").glob("products.*.snapshot.json"))
    snapshot.write_text(snapshot.read_text().replace("1010.00", "1.00"))
    with pytest.raises(CatalogError, match="sha256"):
        read_catalog(c1.root, "products")


def test_push_through_the_cli(home, caja_folder, tmp_path):
    c1 = caja_folder("CAJA1")
    run_cli(home, "caja", "add", "CAJA1", "--path", c1.url, check=0)
    proc = run_cli(home, "catalogs", "push", check=2)
    assert "no catalog is loaded" in proc.stderr
    run_cli(home, "catalogs", "load", "products", str(write_products(tmp_path / "p.csv", {"A": "1.00", "B": "2.00"})), check=0)
    doc = cli_json(home, "catalogs", "push", "--dry-run")
    [r] = doc["results"]
    assert doc["action"] == "catalogs push" and r["outcome"] == "ok" and r["catalogs"][0]["gain"] == ["A", "B"]
    assert not (c1.root / "catalogs").exists()
    doc = cli_json(home, "catalogs", "push")
    [r] = doc["results"]
    assert (r["mode"], r["version"], r["upserts"], r["deletes"]) == ("partial", {"products": 2}, 2, 0)
    assert r["catalogs"][0]["fallback"].startswith("no manifest")
    logged = [json.loads(line) for line in run_cli(home, "--json", "log", "--action", "catalogs push", check=0).stdout.splitlines()]
    assert [row["outcome"] for row in logged] == ["refused", "ok", "ok"] and "instead of partial" in logged[-1]["message"]
    # every catalog falling back for one reason: the reason said once
    run_cli(home, "catalogs", "load", "groups", str(write_products(tmp_path / "g.csv", {"G": "1.00"})), "--key", "code", check=0)
    shutil.rmtree(c1.root / "catalogs")
    [r] = cli_json(home, "catalogs", "push")["results"]
    assert r["message"].startswith("pushed total instead of partial (no manifest at the caja") and r["message"].count("no manifest") == 1
    assert "groups total v1 (+1 -0); products total v2 (+2 -0)" in r["message"], r["message"]


@pytest.mark.slow
def test_sigkill_during_pushes_of_a_big_catalog_leaves_old_or_new_and_the_next_push_repairs(home, caja_folder, tmp_path):
    write_config(home, limits={"lease_s": 600.0})
    c1 = caja_folder("CAJA1")
    run_cli(home, "caja", "add", "CAJA1", "--path", c1.url, check=0)
    rng = random.Random(11)
    prices = {f"P{i:05d}": f"{1000 + i}.00" for i in range(20000)}
    csv_path = write_products(tmp_path / "big.csv", prices)
    run_cli(home, "catalogs", "load", "products", str(csv_path), check=0)
    t0 = time.monotonic()
    run_cli(home, "catalogs", "push", check=0)
    push_seconds = time.monotonic() - t0  # program start included
    shas = {read_catalog(c1.root, "products").sha256}
    cmd = [sys.executable, "-m", "syscafe_sync", "--home", str(home), "catalogs", "push"]
    kills = 0
    for round_ in range(8):
        for code in rng.sample(sorted(prices), 1500):
            prices[code] = f"{rng.randint(1, 99999)}.00"
        run_cli(home, "catalogs", "load", "products", str(write_products(csv_path, prices)), check=0)
        new_sha = json.loads(run_cli(home, "--json", "catalogs", "show", "products", check=0).stdout).get("sha256")
        mode = rng.choice(["partial", "total", "replace"])
        proc = subprocess.Popen(cmd + ["--mode", mode], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.0) * push_seconds)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        seen = read_catalog(c1.root, "products").sha256
        assert seen in shas | {new_sha}, f"round {round_}: a reader saw a catalog that is neither the old nor the new one"
        named_before = manifest_names(c1.root)
        run_cli(home, "catalogs", "push", check=0)
        view = read_catalog(c1.root, "products")
        assert view.sha256 == new_sha and {k: r["price"] for k, r in view.records.items()} == prices
        # Whatever the killed push left is gone; what the manifest before the repair named stays for its readers.
        assert {p.name for p in (c1.root / "catalogs").iterdir()} == named_before | manifest_names(c1.root), round_
        shas = {new_sha}
    assert kills >= 2, "no push was killed: the catalog is too small for this machine"


def test_a_file_held_open_is_retried_with_backoff_then_refused_with_its_reason():
    from syscafe_sync.storage.local import retry_sharing

    attempts = []

    def held_twice():
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise PermissionError(32, "The process cannot access the file because it is being used by another process")
        return "replaced"

    assert retry_sharing(held_twice, "catalogs/manifest.json", delays=(0.01, 0.02, 0.04)) == "replaced"
    assert len(attempts) == 3 and attempts[2] - attempts[1] >= 0.02

    def always_held():
        raise PermissionError(32, "in use")

    with pytest.raises(PermissionError, match="catalogs/manifest.json is held open by another program .* tried 3 times"):
        retry_sharing(always_held, "catalogs/manifest.json", delays=(0.01, 0.01))
