"""`sync`: one full pass — import, loyalty, rules, then catalogs — through the program and the API."""

from __future__ import annotations

import json

import pytest
from conftest import DAY, cli_json, run_cli

from syscafe_sync import passes, registry
from syscafe_sync.caja.catalog import read_catalog


def _shop(home, caja_folder, tmp_path):
    folders = {}
    for name in ("CAJA1", "CAJA2"):
        f = folders[name] = caja_folder(name)
        f.add_many(1, 3)
        f.writer.append_loyalty(DAY, [{"seq": 1, "customer": f"C-{name}", "kind": "earn", "points": 12,
                                       "voucher": f"FV{name[-1]}-1", "at": "2026-11-22T10:00:00-05:00"}])
        f.writer.write_rule({"format": 1, "id": f"R-{name}", "name": "Promo", "type": "percent_discount", "active": True,
                             "version": 1, "updated_at": "2026-11-20T10:00:00-05:00", "action": {"percent": "5"}})
        run_cli(home, "caja", "add", name, "--path", str(f.root), check=0)
    products = tmp_path / "products.csv"
    products.write_text("code,description,price\nALM-EJ,Almuerzo ejecutivo,16000.00\n")
    run_cli(home, "catalogs", "load", "products", str(products), check=0)
    return folders


def test_a_full_pass_does_every_action_and_shares_the_points(home, caja_folder, tmp_path):
    folders = _shop(home, caja_folder, tmp_path)
    doc = cli_json(home, "sync", "--date", DAY.isoformat())
    assert doc["action"] == "sync" and doc["date"] == DAY.isoformat()
    actions = {a["action"]: a for a in doc["actions"]}
    assert list(actions) == ["import", "loyalty sync", "rules sync", "catalogs push"]
    assert [(r["caja"], r["imported"]) for r in actions["import"]["results"]] == [("CAJA1", 3), ("CAJA2", 3)]
    assert [r["entries"] for r in actions["loyalty sync"]["results"]] == [1, 1]
    assert [r["new"] for r in actions["rules sync"]["results"]] == [1, 1]
    assert all(r["outcome"] == "ok" for a in doc["actions"] for r in a["results"])
    assert actions["loyalty sync"]["findings"] == []  # the vouchers the points were earned on arrived in the same pass
    for f in folders.values():
        balances = read_catalog(f.root, "loyalty_balances")
        assert {k: r["points"] for k, r in balances.records.items()} == {"C-CAJA1": "12", "C-CAJA2": "12"}
        assert "ALM-EJ" in read_catalog(f.root, "products").records
    again = cli_json(home, "sync", "--date", DAY.isoformat())
    assert [r["skipped"] for r in again["actions"][0]["results"]] == [3, 3]
    assert [c["mode"] for r in again["actions"][3]["results"] for c in r["catalogs"]] == ["unchanged"] * 4
    logged = [json.loads(line) for line in run_cli(home, "--json", "log", "--action", "sync", check=0).stdout.splitlines()]
    assert [(row["caja"], row["outcome"]) for row in logged] == [("CAJA1", "ok"), ("CAJA2", "ok")] * 2


def test_an_unreachable_caja_fails_the_pass_and_the_other_is_served(home, caja_folder, tmp_path, cfg):
    folders = _shop(home, caja_folder, tmp_path)
    registry.edit("CAJA1", root=str(folders["CAJA1"].root.parent / "unplugged"))
    result = passes.run_pass(cfg, (), DAY)
    assert result.failed
    assert [(r.caja, r.outcome) for r in result.imports.results] == [("CAJA1", "unreachable"), ("CAJA2", "ok")]
    assert [(r.caja, r.outcome) for r in result.pushed.results] == [("CAJA1", "unreachable"), ("CAJA2", "ok")]
    proc = run_cli(home, "sync", "--date", DAY.isoformat(), check=1)
    assert "CAJA1 import: " in proc.stdout and "did not answer" in proc.stdout


def test_a_busy_or_unreachable_caja_is_not_tried_again_for_each_day_it_has_to_catch_up(home, caja_folder, tmp_path):
    from conftest import write_config

    from syscafe_sync import config as config_mod
    from syscafe_sync.lease import CajaLease

    write_config(home, limits={"lock_wait_s": 1.0, "connect_timeout_s": 1.0})  # catch_up_days: the default 7
    cfg = config_mod.load(home)
    for name in ("CAJA1", "CAJA2", "CAJA3"):
        registry.add(name, str(caja_folder(name).root))
    registry.edit("CAJA3", root=str(tmp_path / "unplugged"))
    manual = CajaLease("caja:CAJA1", 60)  # a manual `import` holds CAJA1 for the whole pass
    assert manual.try_acquire()
    try:
        result = passes.run_pass(cfg)
    finally:
        manual.release()
    by_caja = {}
    for r in result.imports.results:
        by_caja.setdefault(r.caja, []).append(r.outcome)
    # Each of the seven days waited lock_wait_s (30 s by default) for the same holder, one after the other.
    assert by_caja == {"CAJA1": ["busy"], "CAJA2": ["ok"] * 7, "CAJA3": ["unreachable"]}


def _interrupted(home, args: list[str], started) -> tuple[str, str]:
    """Runs the program with `args`, sends it Ctrl-C's SIGINT once `started()` says the work is under way,
    and returns its stdout and stderr; asserts it ended as a command stopped at a safe point does."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import cli_env

    proc = subprocess.Popen([sys.executable, "-m", "syscafe_sync", "--home", str(home), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(home))
    try:
        deadline = time.monotonic() + 60
        while not started() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the work ended before the test could interrupt it: give it more to do"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # Before, only the main thread heard it: the work went on to its end, then "Aborted!".
    assert proc.returncode == 1 and "stopping at the next safe point" in err, err
    return out, err


@pytest.mark.parametrize("command", ["sync", "import"])
def test_ctrl_c_stops_a_manual_sync_or_import_at_its_next_safe_point(home, caja_folder, command):
    from conftest import db_rows, write_config

    write_config(home, limits={"batch_size": 20})
    big = caja_folder("CAJA1")
    big.add_many(1, 1500)
    registry.add("CAJA1", str(big.root))
    imported = lambda: int(db_rows(home, "SELECT COUNT(*) FROM voucher")[0][0])  # noqa: E731
    out, _ = _interrupted(home, [command, "--date", DAY.isoformat()], lambda: imported() > 0)
    assert "syscafe-sync was asked to stop" in out, out
    assert 0 < imported() < 1500
    lines = int(db_rows(home, "SELECT COUNT(*) FROM voucher_line")[0][0])
    assert lines == 2 * imported(), "every voucher imported is whole"
    doc = cli_json(home, "sync", "--date", DAY.isoformat())
    assert imported() == 1500 and doc["actions"][0]["results"][0]["outcome"] == "ok"


def test_ctrl_c_stops_a_catalog_push_before_the_cajas_not_started_and_leaves_each_whole(home, caja_folder, tmp_path):
    from conftest import db_rows, write_config

    write_config(home, limits={"workers": 1})  # one caja after the other: a Ctrl-C falls between two of them
    folders = [caja_folder(f"CAJA{i}") for i in range(1, 9)]
    for f in folders:
        registry.add(f.name, str(f.root))
    products = tmp_path / "products.csv"
    products.write_text("code,description,price\n" + "".join(f"P{i:05d},Producto {i},{1000 + i}.00\n" for i in range(30000)))
    run_cli(home, "catalogs", "load", "products", str(products), check=0)
    committed = lambda: int(db_rows(home, "SELECT COUNT(*) FROM caja_catalogs WHERE manifest_sha IS NOT NULL")[0][0])  # noqa: E731
    out, _ = _interrupted(home, ["catalogs", "push"], lambda: committed() > 0)
    assert "catalog push to CAJA8 not started: syscafe-sync is stopping" in out, out
    pushed = [f for f in folders if (f.root / "catalogs" / "manifest.json").exists()]
    assert 0 < len(pushed) < len(folders)
    for f in pushed:
        assert len(read_catalog(f.root, "products").records) == 30000
    doc = cli_json(home, "catalogs", "push")
    assert [r["outcome"] for r in doc["results"]] == ["ok"] * len(folders)
    assert all(len(read_catalog(f.root, "products").records) == 30000 for f in folders)
