"""A caja folder on a share mounted on the main server (a plain path, as an fstab CIFS mount gives), whose
machine stops answering: the mount is FUSE, frozen by SIGSTOP (tests/frozen_mount.py), so every call into
it blocks in the kernel, where no Python code can interrupt it. Each command must serve the other cajas,
report the frozen one within its bound, and take it up again once it answers."""

from __future__ import annotations

import json
import threading
import time

from conftest import DAY, CajaFolder, default_codes, run_cli, write_config

from syscafe_sync import bounded, catalogs, importer, loyalty, registry
from syscafe_sync import config as config_mod
from syscafe_sync.caja.catalog import read_catalog

LIMITS = {"connect_timeout_s": 1.0, "caja_timeout_s": 3.0}


def results(proc) -> dict[str, dict]:
    return {r["caja"]: r for r in json.loads(proc.stdout)["results"]}


def frozen_for(frozen_mount, home, *args: str, exit_code: int = 1, bound_s: float = 20.0):
    """Runs the CLI with the share frozen; (its JSON results by caja, seconds it took)."""
    frozen_mount.freeze()
    try:
        started = time.monotonic()
        proc = run_cli(home, "--json", *args, check=exit_code, timeout=60)
        took = time.monotonic() - started
    finally:
        frozen_mount.thaw()
    assert took < bound_s, f"{' '.join(args)} took {took:.1f} s with {LIMITS}"
    return results(proc), took


def two_cajas(home, tmp_path, frozen_mount) -> tuple[CajaFolder, CajaFolder]:
    """CAJA1 on the mounted share (written on the share's own disk, as its POS does), CAJA2 on a local disk."""
    write_config(home, limits=LIMITS)
    mounted = CajaFolder(frozen_mount.backing / "CAJA1", "CAJA1", default_codes("CAJA1"),
                         url=str(frozen_mount.mountpoint / "CAJA1"))
    local = CajaFolder(tmp_path / "cajas" / "CAJA2", "CAJA2", default_codes("CAJA2"))
    registry.add("CAJA1", mounted.url)
    registry.add("CAJA2", local.url)
    return mounted, local


def load_products(tmp_path, rows: str) -> None:
    products = tmp_path / "products.csv"
    products.write_text("code,description,price\n" + rows, encoding="utf-8")
    catalogs.load("products", products)


def test_a_frozen_mounted_share_is_reported_within_its_bound_and_served_again_once_it_answers(home, cfg, tmp_path, frozen_mount):
    mounted, local = two_cajas(home, tmp_path, frozen_mount)
    mounted.add_many(1, 3)
    local.add_many(1, 3)
    load_products(tmp_path, "ALM-EJ,Almuerzo ejecutivo,16000.00\n")

    got, took = frozen_for(frozen_mount, home, "import", "--date", DAY.isoformat())
    assert got["CAJA2"]["outcome"] == "ok" and got["CAJA2"]["imported"] == 3
    assert got["CAJA1"]["outcome"] == "unreachable" and f"{mounted.url} did not answer" in got["CAJA1"]["message"]

    got, _ = frozen_for(frozen_mount, home, "catalogs", "push")
    assert got["CAJA2"]["outcome"] == "ok" and got["CAJA2"]["mode"] == "partial"
    assert got["CAJA1"]["outcome"] == "unreachable"
    assert not (frozen_mount.backing / "CAJA1" / "catalogs").exists(), "nothing was written to the frozen caja"

    frozen_mount.freeze()
    try:
        started = time.monotonic()
        listed = {c["name"]: c for c in json.loads(run_cli(home, "--json", "caja", "list", check=0, timeout=60).stdout)["cajas"]}
        took = time.monotonic() - started
    finally:
        frozen_mount.thaw()
    assert took < 20 and (listed["CAJA1"]["reachable"], listed["CAJA2"]["reachable"]) == (False, True)

    # answering again: the next runs take it up where it was left, and nothing of CAJA2 moves
    again = results(run_cli(home, "--json", "import", "--date", DAY.isoformat(), check=0))
    assert (again["CAJA1"]["imported"], again["CAJA2"]["imported"]) == (3, 0)
    pushed = results(run_cli(home, "--json", "catalogs", "push", check=0))
    assert pushed["CAJA1"]["outcome"] == "ok" and (frozen_mount.backing / "CAJA1" / "catalogs" / "manifest.json").exists()


def test_a_push_cut_off_when_the_mounted_share_stops_answering_mid_write_leaves_the_caja_whole(home, cfg, tmp_path, frozen_mount):
    """The share stops answering once a total push has written the new snapshot there, as it renames it:
    the push to it is cut off after caja_timeout_s (the rename stays blocked in the kernel), the other caja
    is pushed, the frozen caja's readers stay on the previous catalog, whole, and the next push brings it
    up to date."""
    mounted, local = two_cajas(home, tmp_path, frozen_mount)
    load_products(tmp_path, "ALM-EJ,Almuerzo ejecutivo,16000.00\nGAS-400,Gaseosa 400 ml,4000.00\n")
    assert all(r["outcome"] == "ok" for r in results(run_cli(home, "--json", "catalogs", "push", check=0)).values())
    before = read_catalog(mounted.root, "products")
    load_products(tmp_path, "ALM-EJ,Almuerzo ejecutivo,17000.00\nCAF-500,Café 500 g,21000.00\n")

    frozen_mount.freeze_at("release", ".products.")  # the close of the new snapshot's temporary file
    try:
        started = time.monotonic()
        proc = run_cli(home, "--json", "catalogs", "push", "--mode", "total", check=1, timeout=60)
        took = time.monotonic() - started
        assert frozen_mount.frozen, "the share never stopped answering: the push did not get to its snapshot"
    finally:
        frozen_mount.thaw()
    got = results(proc)
    assert took < 20, f"the push took {took:.1f} s with {LIMITS}"
    assert got["CAJA2"]["outcome"] == "ok" and got["CAJA2"]["version"] == {"products": 5}
    assert got["CAJA1"]["outcome"] == "failed"
    assert "cut off after 3 s (limits.caja_timeout_s); the caja stays on its previous catalogs, whole" in got["CAJA1"]["message"]
    after = read_catalog(mounted.root, "products")
    assert (after.version, after.canonical(), after.sha256) == (before.version, before.canonical(), before.sha256)
    folder = mounted.root / "catalogs"
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == [".products.5.snapshot.json.tmp"], "cut off before its rename"

    again = results(run_cli(home, "--json", "catalogs", "push", check=0))
    assert again["CAJA1"]["outcome"] == "ok", again["CAJA1"]["message"]
    cat, records = catalogs.view("products")
    now = read_catalog(mounted.root, "products")
    assert (now.version, now.canonical(), now.sha256) == (cat.version, records, cat.sha256)
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")], "what the cut-off push left is cleaned up"


def test_while_a_call_stays_blocked_on_a_frozen_mount_no_other_is_started_there(home, tmp_path, frozen_mount):
    """In the service, one process for days: a call the kernel holds on a frozen mount cannot be woken, so
    each later pass (and each action of a pass) reports the caja at once instead of blocking one more
    thread there and waiting for the lease that call still holds; once the share answers, the call
    returns and the caja is served again."""
    mounted, local = two_cajas(home, tmp_path, frozen_mount)
    mounted.add_many(1, 3)
    cfg = config_mod.load(home)  # with LIMITS
    frozen_mount.freeze()
    try:
        first = {r.caja: r for r in importer.import_day(cfg, [], DAY, "skip").results}
        assert first["CAJA1"].outcome == "unreachable" and "did not answer" in first["CAJA1"].message
        for _ in range(3):
            again = {r.caja: r for r in importer.import_day(cfg, [], DAY, "skip").results}
            assert again["CAJA1"].outcome == "unreachable"
            assert again["CAJA1"].message.startswith(f"{mounted.url} still has not answered the import of CAJA1 given up on at ")
            assert again["CAJA2"].outcome == "ok"
        loyalty_result = {r.caja: r for r in loyalty.sync(cfg, []).results}
        assert "still has not answered the import of CAJA1" in loyalty_result["CAJA1"].message, "another action, the same root"
        on_caja1 = [t.name for t in threading.enumerate() if t.name.startswith("bounded:") and t.name.endswith(" CAJA1")]
        assert on_caja1 == ["bounded:import of CAJA1"], "no thread more blocked on the frozen mount"
    finally:
        frozen_mount.thaw()
    deadline = time.monotonic() + 10
    while bounded.blocked(mounted.url) is not None:
        assert time.monotonic() < deadline, "the blocked call did not return once the share answered"
        time.sleep(0.05)
    served = {r.caja: r for r in importer.import_day(cfg, [], DAY, "skip").results}
    assert (served["CAJA1"].outcome, served["CAJA1"].imported) == ("ok", 3)
