"""Serving one caja (serve.serve_caja): its root has connect_timeout_s to answer, its work caja_timeout_s.

Both run in one worker step; these tests hold the operating system's answers back (os.scandir, os.open)
to show that the two bounds stay apart, and that work never starts on a caja reported unreachable.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from conftest import write_config

from syscafe_sync import catalogs, config as config_mod, push, registry
from syscafe_sync.caja.catalog import read_catalog
from syscafe_sync.lease import CajaLease


class Held:
    """os.scandir / os.open of paths under `prefix` wait for `go` (at most 60 s), then answer as usual."""

    def __init__(self, monkeypatch, prefix: str, call: str):
        self.go, self.waiting = threading.Event(), threading.Event()
        real = getattr(os, call)

        def held(path=".", *args, **kw):
            if isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(prefix):
                self.waiting.set()
                self.go.wait(60)
            return real(path, *args, **kw)

        monkeypatch.setattr(os, call, held)


@pytest.fixture
def pushed(home, caja_folder, tmp_path):
    """CAJA1 and CAJA2 on local folders, a products catalog loaded; connect_timeout_s = 1."""
    write_config(home, limits={"connect_timeout_s": 1.0, "caja_timeout_s": 20.0})
    cfg = config_mod.load(home)
    c1, c2 = caja_folder("CAJA1"), caja_folder("CAJA2")
    registry.add("CAJA1", str(c1.root))
    registry.add("CAJA2", str(c2.root))
    src = tmp_path / "p.jsonl"
    src.write_text('{"code": "P1", "price": "1000.00"}\n', encoding="utf-8")
    catalogs.load("products", src)
    return cfg, c1, c2


def test_a_root_that_does_not_answer_in_time_is_unreachable_and_its_work_never_starts(pushed, monkeypatch):
    cfg, c1, c2 = pushed
    held = Held(monkeypatch, str(c1.root), "scandir")
    started = time.monotonic()
    try:
        res = {r.caja: r for r in push.push(cfg).results}
        elapsed = time.monotonic() - started
        assert res["CAJA1"].outcome == "unreachable"
        assert f"{c1.root} did not answer (nothing within 1 s, limits.connect_timeout_s)" in res["CAJA1"].message
        assert res["CAJA2"].outcome == "ok" and read_catalog(c2.root, "products").records["P1"]["price"] == "1000.00"
        assert elapsed < 1.0 + 4.0, elapsed
        CajaLease("catalogs:CAJA1", 60).acquire(wait=0)  # given back when it was reported
    finally:
        held.go.set()  # the root answers now, late: the push it belonged to must not run
    time.sleep(0.5)
    assert not (c1.root / "catalogs").exists()


def test_a_caja_whose_manifest_read_does_not_answer_in_time_is_unreachable_and_its_push_never_starts(pushed, monkeypatch, tmp_path):
    """After the first push a caja's first step is its manifest's read, not a listing of its root: that
    read has connect_timeout_s, and a late answer does not start the work."""
    cfg, c1, c2 = pushed
    push.push(cfg)
    src = tmp_path / "p2.jsonl"
    src.write_text('{"code": "P1", "price": "2000.00"}\n', encoding="utf-8")
    catalogs.load("products", src)
    manifest = c1.root / "catalogs" / "manifest.json"
    before = manifest.read_bytes()
    held = Held(monkeypatch, str(manifest), "open")
    try:
        res = {r.caja: r for r in push.push(cfg).results}
        assert held.waiting.is_set()
        assert res["CAJA1"].outcome == "unreachable"
        assert f"{c1.root} did not answer (nothing within 1 s, limits.connect_timeout_s)" in res["CAJA1"].message
        assert res["CAJA2"].outcome == "ok" and read_catalog(c2.root, "products").records["P1"]["price"] == "2000.00"
        CajaLease("catalogs:CAJA1", 60).acquire(wait=0)  # given back when it was reported
    finally:
        held.go.set()  # the manifest answers now, late: the push it belonged to must not run
    time.sleep(0.5)
    assert manifest.read_bytes() == before
    assert read_catalog(c1.root, "products").records["P1"]["price"] == "1000.00"


def test_work_that_outlasts_the_connect_bound_runs_to_its_own(pushed, monkeypatch):
    cfg, c1, _ = pushed
    # The root answers at once (no manifest there yet, the root listed); its work is slow (listing catalogs/).
    held = Held(monkeypatch, str(c1.root / "catalogs"), "scandir")
    timer = threading.Timer(2.0, held.go.set)  # twice connect_timeout_s
    timer.start()
    try:
        [r] = push.push(cfg, ["CAJA1"]).results
    finally:
        timer.cancel()
        held.go.set()
    assert held.waiting.is_set()
    assert r.outcome == "ok", r.message
    assert r.duration_s > 1.5  # well past the 1 s connect bound: the work was held until the timer, 2 s after it started
    assert read_catalog(c1.root, "products").version == catalogs.get("products").version
