"""smb:// roots against a real Samba server on loopback (tests/samba.py): import, push, loyalty,
credentials, and a server frozen in the middle of a pass."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time

import pytest
from conftest import DAY, cli_json, run_cli, smb_credentials, write_config

from samba import PASSWORD, USER, SambaServer, free_port
from syscafe_sync import catalogs, config as config_mod, importer, loyalty, overview, push, registry
from syscafe_sync.caja.catalog import read_catalog
from syscafe_sync.db.models import LoyaltyEntry, Voucher
from syscafe_sync.errors import RegistryError
from syscafe_sync.storage.probe import SMB_PORTS, tcp_answers


@pytest.fixture
def cfg(smb_caja, home):
    """This module's configuration: read once smb_caja has written the share's credentials into it."""
    return config_mod.load(home)


def imported(cfg, mode="skip", *names, progress=None):
    return {r.caja: r for r in importer.import_day(cfg, list(names), DAY, mode, progress).results}


def test_import_skip_overwrite_and_refusals_over_smb_beside_a_local_caja(cfg, smb_caja, caja_folder):
    c1, root = smb_caja("CAJA1", "caja1")
    c2 = caja_folder("CAJA2")
    registry.add("CAJA1", root, config=cfg)
    registry.add("CAJA2", str(c2.root), config=cfg)
    assert registry.get("CAJA1").root == root  # stored as given: user, host, port, path; no password
    c1.add_many(1, 30)
    c2.add_many(1, 3)
    c1.raw(f"movements/{DAY}/FV1-900.json", "not json")
    c1.raw(f"movements/{DAY}/FV1-901.json", b"{" + b" " * (cfg.limits["max_file_bytes"] + 1) + b"}")
    res = imported(cfg)
    assert (res["CAJA1"].outcome, res["CAJA1"].imported, res["CAJA1"].refused) == ("ok", 30, 2)
    assert res["CAJA2"].imported == 3
    reasons = {r["path"].rsplit("/", 1)[1]: r["reason"] for r in res["CAJA1"].refusals}
    assert reasons["FV1-900.json"].startswith("not valid JSON") or "JSON" in reasons["FV1-900.json"]
    assert "over the limit" in reasons["FV1-901.json"]
    doc = Voucher.get((Voucher.code == "FV1") & (Voucher.number == 7)).document
    assert json.loads(doc) == json.loads((c1.day_folder() / "FV1-7.json").read_text())

    # skip decides from the listing alone: garbage in an imported file is never read
    (c1.day_folder() / "FV1-3.json").write_text("garbage")
    again = imported(cfg)["CAJA1"]
    assert (again.imported, again.skipped, again.refused) == (0, 30, 2)

    c1.add(3, status="voided")
    c1.add(4, status="voided")
    over = imported(cfg, "overwrite")["CAJA1"]
    assert (over.imported, over.updated, over.skipped) == (0, 2, 28)
    assert Voucher.get((Voucher.code == "FV1") & (Voucher.number == 4)).status == "voided"


def test_caja_list_sees_an_smb_caja_and_its_pending_vouchers(cfg, smb_caja):
    c1, root = smb_caja("CAJA1", "caja1")
    registry.add("CAJA1", root, config=cfg)
    c1.add_many(1, 4, day=importer.today(cfg))
    [row] = overview.overview(cfg)
    assert (row["reachable"], row["pending"], row["warnings"]) == (True, 4, [])


def write_products(path, prices):
    path.write_text("code,description,price\n" + "".join(f"{k},Producto {k},{v}\n" for k, v in sorted(prices.items())))
    return path


def test_push_partial_total_replace_over_smb_read_back(cfg, smb_caja, tmp_path):
    c1, root = smb_caja("CAJA1", "caja1")
    registry.add("CAJA1", root, config=cfg)
    prices = {f"P{i:03d}": f"{1000 + i}.00" for i in range(50)}
    catalogs.load("products", write_products(tmp_path / "p.csv", prices))

    def pushed(mode):
        [r] = push.push(cfg, [], mode).results
        assert r.outcome == "ok", r.message
        return r

    first = pushed("partial")
    assert first.catalogs[0].mode == "total"  # no manifest yet
    assert {k: r["price"] for k, r in read_catalog(c1.root, "products").records.items()} == prices

    prices["P001"] = "9.00"
    catalogs.load("products", write_products(tmp_path / "p.csv", prices))
    part = pushed("partial")
    assert (part.catalogs[0].mode, part.catalogs[0].upserts) == ("partial", 1)
    assert read_catalog(c1.root, "products").records["P001"]["price"] == "9.00"

    del prices["P002"]
    catalogs.load("products", write_products(tmp_path / "p.csv", prices))
    pushed("total")  # keeps what only the caja has
    assert read_catalog(c1.root, "products").records.keys() == set(prices) | {"P002"}
    pushed("replace")
    assert {k: r["price"] for k, r in read_catalog(c1.root, "products").records.items()} == prices
    left = [p.name for p in (c1.root / "catalogs").iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert left == []


def test_cajas_that_are_folders_of_one_share_are_served_side_by_side(cfg, smb_caja, samba, home, tmp_path):
    """Several cajas on one server (one share, a folder each), served at once by the pool of a
    fresh process's first pass (as a daemon's after it starts): each sets up its own session, and
    none takes another's half set up."""
    from conftest import CajaFolder, default_codes
    from samba import PASSWORD, USER

    smb_caja("CAJA1", "caja1")  # empties the shares
    # Six NTLM set-ups at once on two cores once took over the 5 s default when the machine was busy;
    # this test is about sessions not mixing, not about the time-out.
    write_config(home, limits={"connect_timeout_s": 30.0})
    smb_credentials(home, USER, PASSWORD)
    folders = []
    for n in range(1, 7):
        name = f"CAJA{n}"
        folder = CajaFolder(samba.shares["caja2"] / "Datos" / name, name, default_codes(name), samba.url("caja2", f"Datos/{name}"))
        folder.add_many(1, 5)
        registry.add(name, folder.url, config=cfg)
        folders.append(folder)
    catalogs.load("products", write_products(tmp_path / "p.csv", {"P001": "1000.00"}))
    for _ in range(3):  # each `sync` a new process: every caja dials at once
        out = cli_json(home, "sync", "--date", DAY.isoformat())
        failed = [(r["caja"], r["message"]) for a in out["actions"] for r in a["results"] if r["outcome"] != "ok"]
        assert failed == []
    assert Voucher.select().count() == 30
    for f in folders:
        assert read_catalog(f.root, "products").records["P001"]["price"] == "1000.00"


def test_each_cajas_connection_to_one_server_is_its_own_client(cfg, samba, monkeypatch):
    """Cajas that are folders of one server dial it each with a client GUID of its own: with one GUID for
    the process, as smbclient gives, a multichannel server (Samba 4.15 and later) took them for channels
    of one client, and now and again never answered one's session setup (the side-by-side test above)."""
    from smbprotocol.connection import Connection

    from syscafe_sync.storage import open_root
    from syscafe_sync.storage import smb as smb_mod

    monkeypatch.setenv("SYSCAFE_SYNC_SMB_PASSWORD", PASSWORD)
    (samba.shares["caja2"] / "Datos" / "A").mkdir(parents=True, exist_ok=True)
    (samba.shares["caja2"] / "Datos" / "B").mkdir(parents=True, exist_ok=True)
    roots = [open_root(samba.url("caja2", f"Datos/{n}"), cfg) for n in ("A", "B")]
    for st in roots:
        st.list("")
    conns = [c for st in roots for c in smb_mod._CACHES[st._key].values()]
    assert len(conns) == 2 and all(isinstance(c, Connection) and c.transport.connected for c in conns)
    assert conns[0].client_guid != conns[1].client_guid
    for st in roots:
        st.forget()


def test_loyalty_sync_over_smb_reads_only_new_bytes(cfg, smb_caja):
    c1, root = smb_caja("CAJA1", "caja1")
    registry.add("CAJA1", root, config=cfg)
    ledger = c1.root / "loyalty" / f"{DAY}.jsonl"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    line = lambda seq, pts: json.dumps({"seq": seq, "customer": "C1", "kind": "earn", "points": pts,
                                        "at": "2026-11-22T10:00:00-05:00"}) + "\n"
    ledger.write_text(line(1, 10) + line(2, 5) + '{"seq": 3')  # the last line is still being written
    assert loyalty.sync(cfg).results[0].entries == 2
    with open(ledger, "a") as f:
        f.write(', "customer": "C1", "kind": "earn", "points": 1, "at": "2026-11-22T10:00:00-05:00"}\n' + line(4, 7))
    r = loyalty.sync(cfg).results[0]
    assert (r.outcome, r.entries) == ("ok", 2)
    assert sorted(e.seq for e in LoyaltyEntry.select()) == [1, 2, 3, 4]
    assert loyalty.sync(cfg).results[0].entries == 0


def test_a_root_with_a_password_is_refused_without_echoing_it(home, samba):
    proc = run_cli(home, "caja", "add", "CAJA1", "--path", f"smb://{USER}:S3cret-In-Url@127.0.0.1:{samba.port}/caja1", check=2)
    assert "S3cret-In-Url" not in proc.stdout + proc.stderr
    assert "SYSCAFE_SYNC_SMB_PASSWORD" in proc.stderr and '[smb.hosts."127.0.0.1"]' in proc.stderr
    assert "S3cret-In-Url" not in (home / "logs" / "syscafe-sync.log").read_text()


def test_wrong_credentials_are_refused_plainly_and_never_printed_or_logged(home, smb_caja, samba):
    c1, root = smb_caja("CAJA1", "caja1")
    wrong = "Wr0ng-Pa55word-Here"
    cfg_text = (home / "config.toml").read_text().replace(PASSWORD, wrong)
    (home / "config.toml").write_text(cfg_text)
    proc = run_cli(home, "caja", "add", "CAJA1", "--path", root, check=2)
    assert "refused user 'syncuser'" in proc.stderr and "STATUS_LOGON_FAILURE" in proc.stderr
    assert '[smb.hosts."127.0.0.1"]' in proc.stderr
    assert cli_json(home, "caja", "list")["cajas"] == []  # nothing registered
    # The same through the environment, when the config has no password.
    (home / "config.toml").write_text(cfg_text.replace(f'password = "{wrong}"\n', ""))
    env_proc = run_cli(home, "caja", "add", "CAJA1", "--path", root, env={"SYSCAFE_SYNC_SMB_PASSWORD": wrong}, check=2)
    assert "SYSCAFE_SYNC_SMB_PASSWORD" in env_proc.stderr
    # No password anywhere: said where to put it.
    none_proc = run_cli(home, "caja", "add", "CAJA1", "--path", root, check=2)
    assert "no password for user 'syncuser'" in none_proc.stderr
    # The right one from the environment registers it; a later wrong one fails the import (exit 1).
    run_cli(home, "caja", "add", "CAJA1", "--path", root, env={"SYSCAFE_SYNC_SMB_PASSWORD": PASSWORD}, check=0)
    c1.add(1)
    out = run_cli(home, "--json", "import", "--date", str(DAY), env={"SYSCAFE_SYNC_SMB_PASSWORD": wrong}, check=1)
    [r] = json.loads(out.stdout)["results"]
    assert r["outcome"] == "failed" and "refused user 'syncuser'" in r["message"]
    everything = [proc.stdout, proc.stderr, env_proc.stdout, env_proc.stderr, none_proc.stderr, out.stdout, out.stderr,
                  (home / "logs" / "syscafe-sync.log").read_text(), run_cli(home, "--json", "log", check=0).stdout]
    for text in everything:
        assert wrong not in text and PASSWORD not in text


def test_credentials_per_caja_win_over_the_host(smb_caja, home):
    c1, root = smb_caja("CAJA1", "caja1")
    text = (home / "config.toml").read_text().replace(PASSWORD, "wrong-for-the-host")
    (home / "config.toml").write_text(text + f'\n[smb.cajas."CAJA1"]\npassword = "{PASSWORD}"\n')
    cfg = config_mod.load(home)
    registry.add("CAJA1", root, config=cfg)
    with pytest.raises(RegistryError, match="refused user 'syncuser'"):
        registry.add("CAJA2", root.replace("caja1", "caja2"), config=cfg, codes=["FV2"])


@pytest.fixture
def frozen_server(samba, tmp_path):
    """A second smbd of its own, so freezing it leaves the session's server serving."""
    server = SambaServer(tmp_path / "frozen", shares=("hung",)).start()
    yield server
    server.stop()


def hung_and_served(home, smb_caja, frozen_server, vouchers: int, **limits):
    """CAJA1 (FV1) on the server a test freezes, with `vouchers` vouchers; CAJA2 (FV2, 10 vouchers)
    on the session's server; both registered with `limits` in config.toml. → (config, CAJA1's folder, CAJA2's)."""
    from conftest import CajaFolder

    write_config(home, limits=limits)
    smb_credentials(home, USER, PASSWORD)
    cfg = config_mod.load(home)
    hung = CajaFolder(frozen_server.shares["hung"], "CAJA1", ["FV1"])
    hung.add_many(1, vouchers)
    c2, root2 = smb_caja("CAJA2", "caja2")
    c2.add_many(1, 10)
    registry.add("CAJA1", frozen_server.url("hung"), config=cfg)
    registry.add("CAJA2", root2, config=cfg)
    return cfg, hung, c2


def after_thaw(one_pass):
    """The result of the first of a few passes that ends ok, or the last one. Samba just thawed may
    still close the first new connections while it ends the old ones (seen here within a second
    or two), so a few passes are allowed, as the service would run them."""
    for _ in range(5):
        r = one_pass()
        if r.outcome == "ok":
            break
        time.sleep(1.0)
    return r


@pytest.mark.slow
def test_a_server_frozen_mid_pass_costs_the_bound_and_the_other_caja_is_served(home, smb_caja, frozen_server):
    cfg, _, _ = hung_and_served(home, smb_caja, frozen_server, 400, caja_timeout_s=3.0, connect_timeout_s=2.0, batch_size=20)

    def freeze_midway(caja, done, total):
        if caja == "CAJA1" and done == 60:
            frozen_server.freeze()

    started = time.monotonic()
    res = imported(cfg, "skip", progress=freeze_midway)
    elapsed = time.monotonic() - started
    assert res["CAJA1"].outcome == "failed" and "cut off after 3 s" in res["CAJA1"].message
    assert 0 < res["CAJA1"].imported < 400
    assert (res["CAJA2"].outcome, res["CAJA2"].imported) == ("ok", 10)
    assert elapsed < 3.0 + 5.0, elapsed

    # Still frozen: the next pass finds it within the connect bound, and serves the other caja.
    started = time.monotonic()
    res = imported(cfg)
    assert res["CAJA1"].outcome == "unreachable" and time.monotonic() - started < 2.0 + 5.0
    assert res["CAJA2"].outcome == "ok"

    # Thawed: the session was dropped, a later pass dials afresh and finishes the day, nothing doubled.
    frozen_server.thaw()
    r1 = after_thaw(lambda: imported(cfg, "skip", "CAJA1")["CAJA1"])
    assert r1.outcome == "ok", r1.message
    assert Voucher.select().where(Voucher.caja == "CAJA1").count() == 400


def test_a_port_that_does_not_answer_is_skipped_at_once_with_the_reason(cfg):
    # A closed port on loopback: the probe says so before anything waits on SMB.
    port = free_port()
    registry.add("CAJA9", f"smb://{USER}@127.0.0.1:{port}/caja9", codes=["FV9"], config=cfg)
    started = time.monotonic()
    [r] = importer.import_day(cfg, ["CAJA9"], DAY).results
    assert r.outcome == "unreachable" and f"127.0.0.1 does not answer on TCP port {port}" in r.message
    assert time.monotonic() - started < 2.0


def test_a_share_on_a_machine_that_does_not_answer_is_skipped_at_once(cfg, smb_caja, caja_folder, home, samba):
    # SPEC: with an IP given, a share root on a machine that does not answer is skipped without waiting on SMB
    _, root = smb_caja("CAJA1", "caja1")
    registry.add("CAJA1", root, config=cfg)
    local = caja_folder("CAJA2")
    registry.add("CAJA2", str(local.root), config=cfg)
    local.add_many(1, 2)
    for name in ("CAJA1", "CAJA2"):
        run_cli(home, "caja", "edit", name, "--ip", "192.0.2.1", check=0)  # TEST-NET-1: nothing answers there
    write_config(home, limits={"connect_timeout_s": 1.0})
    smb_credentials(home, USER, PASSWORD)
    started = time.monotonic()
    res = imported(config_mod.load(home))
    assert res["CAJA1"].outcome == "unreachable"
    # the root names its port: that one is the port probed
    assert f"CAJA1's machine 192.0.2.1 does not answer on the SMB port {samba.port};" in res["CAJA1"].message
    # a folder on this machine's own disk is read whatever its caja's IP says
    assert (res["CAJA2"].outcome, res["CAJA2"].imported) == ("ok", 2)
    assert time.monotonic() - started < 3.0


def test_a_share_on_its_own_port_is_probed_there_when_the_caja_has_an_ip(cfg, smb_caja, home, samba):
    # SMB's own ports are closed on this loopback: probing them would skip a caja served on its high port.
    assert not tcp_answers("127.0.0.1", SMB_PORTS, 1.0), "something listens on 127.0.0.1:445 or 139 here; this test needs them closed"
    c1, root = smb_caja("CAJA1", "caja1")
    registry.add("CAJA1", root, config=cfg)
    run_cli(home, "caja", "edit", "CAJA1", "--ip", "127.0.0.1", check=0)
    c1.add_many(1, 3)
    c1.add_many(1, 2, day=importer.today(cfg))
    res = imported(cfg)["CAJA1"]
    assert (res.outcome, res.imported) == ("ok", 3), res.message
    [row] = overview.overview(cfg)  # caja list probes the same port
    assert (row["ip"], row["ip_answers"], row["reachable"], row["pending"]) == ("127.0.0.1", True, True, 2)


def test_a_server_frozen_mid_read_fails_the_caja_within_the_step_bound(home, smb_caja, frozen_server):
    # caja_timeout_s far away: only the bound on one remote step can end this caja's import early.
    cfg, _, _ = hung_and_served(home, smb_caja, frozen_server, 300, smb_step_timeout_s=2.0, caja_timeout_s=120.0, batch_size=20)
    frozen_at = []

    def freeze_midway(caja, done, total):
        if caja == "CAJA1" and done == 60:
            frozen_server.freeze()
            frozen_at.append(time.monotonic())

    res = imported(cfg, "skip", progress=freeze_midway)
    cut_after = time.monotonic() - frozen_at[0]
    r1 = res["CAJA1"]
    assert r1.outcome == "failed" and 60 <= r1.imported < 300, r1.message
    assert re.search(r"reading movements/\S+\.json did not answer within 2 s \(limits\.smb_step_timeout_s\)", r1.message), r1.message
    assert 2.0 <= cut_after < 2.0 + 3.0, cut_after  # the wait on the first file read after the freeze, no more
    assert (res["CAJA2"].outcome, res["CAJA2"].imported) == ("ok", 10)


def test_a_server_frozen_mid_write_fails_the_push_within_the_step_bound(home, smb_caja, frozen_server, tmp_path):
    cfg, hung, c2 = hung_and_served(home, smb_caja, frozen_server, 0, smb_step_timeout_s=2.0, caja_timeout_s=120.0)
    prices = {f"P{i:05d}": f"{1000 + i}.00" for i in range(20000)}  # a snapshot of a few MB: its write takes a while
    catalogs.load("products", write_products(tmp_path / "p.csv", prices))
    frozen_at = []

    def freeze_when_the_first_temp_file_appears():
        # The push's first write is its snapshot, under a temporary name: frozen while it is written or renamed.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                if any(n.endswith(".tmp") for n in os.listdir(hung.root / "catalogs")):
                    frozen_server.freeze()
                    frozen_at.append(time.monotonic())
                    return
            time.sleep(0.0005)

    watcher = threading.Thread(target=freeze_when_the_first_temp_file_appears, daemon=True)
    watcher.start()
    res = {r.caja: r for r in push.push(cfg, [], "partial").results}
    done = time.monotonic()
    watcher.join(1)
    assert frozen_at, "the push ended before its first temporary file was seen"
    r1 = res["CAJA1"]
    assert r1.outcome == "failed" and "the caja stays on its previous catalogs" in r1.message
    assert re.search(r"(writing|replacing) catalogs/\S*products\S* did not answer within 2 s \(limits\.smb_step_timeout_s\)",
                     r1.message), r1.message
    # The bound runs from the start of the write, which came a little before the freeze (the
    # temporary file was already there): so a little under 2 s after the freeze, never at once.
    assert 1.0 <= done - frozen_at[0] < 2.0 + 3.0, done - frozen_at[0]
    assert res["CAJA2"].outcome == "ok" and read_catalog(c2.root, "products").sha256 == catalogs.get("products").sha256

    # Thawed: the next push dials afresh, commits, and deletes what the cut one left.
    frozen_server.thaw()
    r1 = after_thaw(lambda: push.push(cfg, ["CAJA1"], "partial").results[0])
    assert r1.outcome == "ok", r1.message
    assert read_catalog(hung.root, "products").sha256 == catalogs.get("products").sha256
    push.push(cfg, ["CAJA1"], "partial")
    assert not [n for n in os.listdir(hung.root / "catalogs") if n.endswith(".tmp")]


# --- roots and credentials, no server needed ----------------------------------------------------

@pytest.mark.parametrize("given, stored", [
    ("smb://syncuser@CAJA2/Syscafe/Datos/EMP01/", "smb://syncuser@caja2/Syscafe/Datos/EMP01"),
    ("  SMB://u@10.0.0.5:4450//Syscafe//Datos ", "smb://u@10.0.0.5:4450/Syscafe/Datos"),
    ("smb://u@[::1]:4450/s", "smb://u@[::1]:4450/s"),
    ("smb://DOM%5Cu@h/s/d%20x", "smb://DOM\\u@h/s/d x"),
    ("smb://u@h/s/a%23b", "smb://u@h/s/a%23b"),  # a '#' in a folder name stays encoded, or it would end the URL
    ("smb://u@h/s/Datos%2FEMP01", "smb://u@h/s/Datos/EMP01"),  # an encoded '/' separates all the same
])
def test_smb_roots_are_stored_in_one_spelling(given, stored):
    from syscafe_sync.storage import normalise_root

    assert normalise_root(given) == stored


def test_the_same_share_folder_is_one_root_whatever_the_user_port_or_case():
    from syscafe_sync.storage import root_key

    assert root_key("smb://a@h/S/Datos") == root_key("smb://b@H:445/s/datos") != root_key("smb://a@h:4450/S/Datos")


@pytest.mark.parametrize("root, why", [
    ("smb://host", "names no share"), ("smb:///share", "names no host"), ("smb://u@h/s/../x", "not a folder name"),
    ("smb://u@h:99999/s", "not a usable smb:// URL"), ("smb://u@h/s?x=1", "no '?' or '#'"),
    ("smb://u@h/s/Datos%2F..%2Fotra", "the part '..' is not a folder name"),
])
def test_bad_smb_roots_are_refused_with_the_fix(root, why):
    from syscafe_sync.errors import UsageError
    from syscafe_sync.storage import normalise_root

    with pytest.raises(UsageError, match=re.escape(why)):
        normalise_root(root)


def test_credentials_come_per_caja_then_per_host_then_from_the_environment(monkeypatch):
    from syscafe_sync.storage.smb_url import credentials, parse

    monkeypatch.delenv("SYSCAFE_SYNC_SMB_PASSWORD", raising=False)
    monkeypatch.delenv("SYSCAFE_SYNC_SMB_USERNAME", raising=False)
    smb = {"hosts": {"CAJA2": {"username": "pos", "password": "host-pw"}}, "cajas": {"CAJA2": {"password": "caja-pw"}}}
    assert credentials(parse("smb://caja2/s"), smb, "CAJA2").password == "caja-pw"
    host_only = credentials(parse("smb://caja2/s"), smb, "OTHER")
    assert (host_only.user, host_only.password) == ("pos", "host-pw") and "host-pw" not in repr(host_only)
    assert credentials(parse("smb://someone@caja2/s"), {"hosts": smb["hosts"]}, None).password is None  # another user's
    monkeypatch.setenv("SYSCAFE_SYNC_SMB_PASSWORD", "env-pw")
    assert credentials(parse("smb://someone@caja2/s"), {"hosts": smb["hosts"]}, None).password == "env-pw"


@pytest.mark.parametrize("section, message", [
    ('[smb.hosts."h"]\npassword = 123456\n', 'password must be a non-empty string'),
    ('[smb.hosts."h"]\npasword = "Sec-Ret-9"\n', "unknown key 'pasword'"),
    ('[smb.printers."h"]\npassword = "Sec-Ret-9"\n', "unknown setting smb.printers"),
])
def test_a_bad_smb_section_is_refused_without_showing_its_values(home, section, message):
    (home / "config.toml").write_text(section)
    proc = run_cli(home, "caja", "list", check=2)
    assert message in proc.stderr and "Sec-Ret-9" not in proc.stderr and "123456" not in proc.stderr


@pytest.mark.parametrize("root", [
    "smb://pos:Cafe/2024@caja2/Syscafe/Datos",  # '/', '?', '#' end the host part: urllib reads 'Cafe' as a port
    "smb://pos:Cafe?2024@caja2/Syscafe/Datos",
    "smb://pos:Cafe#2024@caja2/Syscafe/Datos",
    "smb://pos:Ca@fe2024@caja2/Syscafe/Datos",  # an '@' in the password: the last '@' ends it
    "smb://pos:20/Ca:fe@caja2/Syscafe",  # read as port 20, then a bad folder name holding the password's end
])
def test_a_password_in_the_root_is_never_shown_whatever_it_holds(root):
    from syscafe_sync.errors import UsageError
    from syscafe_sync.storage import normalise_root

    with pytest.raises(UsageError) as refused:
        normalise_root(root)
    message = str(refused.value)
    assert "smb://pos:***@" in message and "SYSCAFE_SYNC_SMB_PASSWORD" in message
    for piece in ("Cafe", "2024", "fe2024", "Ca:fe"):
        assert piece not in message


def test_port_zero_is_refused_with_the_fix():
    from syscafe_sync.errors import UsageError
    from syscafe_sync.storage import normalise_root

    with pytest.raises(UsageError, match=r"port 0 is no port; write smb://user@host:PORT/share/path"):
        normalise_root("smb://u@h:0/s")


def close_share(server: SambaServer, share: str) -> None:
    """Has smbd end every client's tree connect to `share` (as an administrator, or a configuration
    reload that drops the share, does), and waits until no client holds one."""
    import subprocess

    subprocess.run(["smbcontrol", "-s", str(server.conf), "smbd", "close-share", share], check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = subprocess.run(["smbstatus", "-s", str(server.conf), "-S"], capture_output=True, text=True, check=True).stdout
        if not [ln for ln in out.splitlines() if ln.split()[:1] == [share]]:
            return
        time.sleep(0.05)
    raise AssertionError(f"smbd still serves {share} to a client:\n{out}")


def test_a_share_the_server_closed_is_the_connection_lost_not_every_file_bad(frozen_server, monkeypatch):
    """Every request on a tree the server ended gets STATUS_NETWORK_NAME_DELETED: taken for each file's
    own error, every voucher of the pass was refused, and the cached connection answered so for good."""
    from syscafe_sync.errors import Unreachable
    from syscafe_sync.storage import open_root

    monkeypatch.setenv("SYSCAFE_SYNC_SMB_PASSWORD", PASSWORD)
    day = frozen_server.shares["hung"] / "movements"
    day.mkdir()
    rels = []
    for n in range(1, 6):
        (day / f"FV1-{n}.json").write_bytes(b"{}")
        rels.append(f"movements/FV1-{n}.json")
    st = open_root(frozen_server.url("hung"))
    assert len(st.list("movements")) == 5
    close_share(frozen_server, "hung")
    with pytest.raises(Unreachable, match=r"the server ended the session \(STATUS_NETWORK_NAME_DELETED\); "
                                          r"the connection was dropped and the next pass dials afresh"):
        st.list("movements")
    assert dict(st.read_many(rels)) == dict.fromkeys(rels, b"{}")  # dialled afresh
    close_share(frozen_server, "hung")
    with pytest.raises(Unreachable):  # the caja is unreachable: no file of it is refused
        list(st.read_many(rels))
    assert dict(st.read_many(rels)) == dict.fromkeys(rels, b"{}")
    assert st.read("movements/FV1-1.json") == b"{}"


def test_a_host_name_that_does_not_resolve_is_said_as_such_not_as_a_machine_that_is_off(cfg):
    # A caja's Windows machine name often does not resolve from a Linux main server: the fix is its IP, not switching it on.
    from syscafe_sync.errors import Unreachable
    from syscafe_sync.storage import open_root

    st = open_root(f"smb://{USER}@caja-que-no-existe.invalid/Syscafe/Datos", cfg)
    with pytest.raises(Unreachable) as lost:
        st.list("")
    message = str(lost.value)
    assert "the host name 'caja-que-no-existe.invalid' of smb://syncuser@caja-que-no-existe.invalid/Syscafe/Datos is not found" in message
    assert "write the machine's IP address in the root instead" in message and "is on" not in message


def test_a_share_the_server_does_not_have_is_said_as_such_not_as_a_missing_file(cfg, samba):
    # A FileNotFoundError read as "no caja.json yet": `caja add --code` registered a misspelt share.
    from syscafe_sync.errors import Unreachable
    from syscafe_sync.storage import open_root

    st = open_root(samba.url("Syscafee", "Datos/EMP01"), cfg)
    for step in (lambda: st.list(""), lambda: st.read("caja.json")):
        with pytest.raises(Unreachable, match=r"127\.0\.0\.1 has no share named 'Syscafee' \(STATUS_BAD_NETWORK_NAME\); "
                                              r"check the share's name in the root smb://syncuser@127\.0\.0\.1:\d+/Syscafee/Datos/EMP01"):
            step()
    with pytest.raises(FileNotFoundError):  # a folder not there (yet) in a share that is: as before
        open_root(samba.url("caja1", "Datos/EMP99"), cfg).read("caja.json")
