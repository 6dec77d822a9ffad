"""A caja folder on a share mounted on the main server (a plain path, as an fstab CIFS mount gives), whose
machine stops answering: the mount is FUSE, frozen by SIGSTOP (tests/frozen_mount.py), so every call into
it blocks in the kernel, where no Python code can interrupt it. Each command must serve the other cajas,
report the frozen one within its bound, and take it up again once it answers."""

from __future__ import annotations

import json
import time

from conftest import DAY, CajaFolder, default_codes, run_cli, write_config

from syscafe_sync import catalogs, registry

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


def test_a_frozen_mounted_share_is_reported_within_its_bound_and_served_again_once_it_answers(home, cfg, tmp_path, frozen_mount):
    write_config(home, limits=LIMITS)
    mounted = CajaFolder(frozen_mount.backing / "CAJA1", "CAJA1", default_codes("CAJA1"),
                         url=str(frozen_mount.mountpoint / "CAJA1"))  # written on the share's own disk, as its POS does
    local = CajaFolder(tmp_path / "cajas" / "CAJA2", "CAJA2", default_codes("CAJA2"))
    registry.add("CAJA1", mounted.url)
    registry.add("CAJA2", local.url)
    mounted.add_many(1, 3)
    local.add_many(1, 3)
    products = tmp_path / "products.csv"
    products.write_text("code,description,price\nALM-EJ,Almuerzo ejecutivo,16000.00\n", encoding="utf-8")
    catalogs.load("products", products)

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
