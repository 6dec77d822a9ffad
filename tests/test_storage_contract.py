"""One contract for every kind of caja root: the same test against a local folder and an smb:// share."""

from __future__ import annotations

import errno

import pytest

from syscafe_sync import config as config_mod
from syscafe_sync.errors import OutsideRoot
from syscafe_sync.storage import open_root


@pytest.fixture(params=["local", "smb"])
def root(request, tmp_path):
    """(storage, the same folder on this machine's disk)."""
    if request.param == "local":
        folder = tmp_path / "caja"
        folder.mkdir()
        return open_root(str(folder)), folder
    smb_caja, home = request.getfixturevalue("smb_caja"), request.getfixturevalue("home")
    folder, url = smb_caja("CAJA1", "caja1")
    return open_root(url, config_mod.load(home), "CAJA1"), folder.root


def test_list_and_read(root):
    st, disk = root
    (disk / "movements").mkdir()
    (disk / "movements" / "a.json").write_bytes(b"0123456789")
    entries = {e.name: e for e in st.list("movements")}
    assert entries["a.json"].is_dir is False and entries["a.json"].size in (None, 10)
    assert {e.name: e.is_dir for e in st.list("")}["movements"] is True
    assert st.read("movements/a.json") == b"0123456789"
    assert st.read_range("movements/a.json", 4) == b"456789"
    assert st.read_range("movements/a.json", 4, 3) == b"456"
    assert st.read_head("movements/a.json", 2) == b"01"
    assert st.size("movements/a.json") == 10 and st.size("movements/nope.json") is None
    with pytest.raises(OSError) as big:
        st.read("movements/a.json", limit=9)
    assert big.value.errno == errno.EFBIG
    with pytest.raises(FileNotFoundError):
        st.read("movements/nope.json")
    with pytest.raises(FileNotFoundError):
        st.list("rules")
    got = list(st.read_many(["movements/a.json", "movements/nope.json", "movements/a.json"], limit=100))
    assert got[0] == ("movements/a.json", b"0123456789") and isinstance(got[1][1], FileNotFoundError)
    assert got[2] == ("movements/a.json", b"0123456789")


@pytest.mark.parametrize("rel", ["../x", "movements/../../x", "a\\..\\x", "C:x", "movements//x"])
def test_nothing_outside_the_root(root, rel):
    st, _ = root
    with pytest.raises(OutsideRoot):
        st.read(rel)
    with pytest.raises(OutsideRoot):
        st.write_atomic(rel, b"x")


def test_writes(root):
    st, disk = root
    st.makedirs("catalogs")
    st.makedirs("catalogs")  # already there: fine
    st.write_atomic("catalogs/manifest.json", b'{"v": 1}')
    st.write_atomic("catalogs/manifest.json", b'{"v": 2}')
    assert (disk / "catalogs" / "manifest.json").read_bytes() == b'{"v": 2}'
    assert st.append("catalogs/j.jsonl", b"one\n", at=0) == 4
    assert st.append("catalogs/j.jsonl", b"two\n", at=4) == 8
    assert st.append("catalogs/j.jsonl", b"TWO\n", at=4) == 8  # what a killed writer left is cut first
    assert (disk / "catalogs" / "j.jsonl").read_bytes() == b"one\nTWO\n"
    st.remove("catalogs/j.jsonl")
    st.remove("catalogs/j.jsonl")  # already gone: fine
    assert sorted(p.name for p in (disk / "catalogs").iterdir()) == ["manifest.json"]


def test_a_file_held_open_on_the_share_is_retried_then_refused_and_the_temp_removed(smb_caja, home, samba):
    import smbclient

    from samba import PASSWORD, USER

    folder, url = smb_caja("CAJA1", "caja1")
    st = open_root(url, config_mod.load(home), "CAJA1")
    st.makedirs("catalogs")
    st.write_atomic("catalogs/manifest.json", b"old")
    # Another client (the POS) holds the manifest open and shares nothing.
    path = "\\\\127.0.0.1\\caja1\\Datos\\EMP01\\catalogs\\manifest.json"
    kw = {"port": samba.port, "username": USER, "password": PASSWORD, "connection_cache": {}}
    with smbclient.open_file(path, "rb", share_access=None, **kw):
        with pytest.raises(PermissionError, match="held open by another program"):
            st.write_atomic("catalogs/manifest.json", b"new")
    assert sorted(p.name for p in (folder.root / "catalogs").iterdir()) == ["manifest.json"]
    assert (folder.root / "catalogs" / "manifest.json").read_bytes() == b"old"
    st.write_atomic("catalogs/manifest.json", b"new")  # released: it goes through
    assert (folder.root / "catalogs" / "manifest.json").read_bytes() == b"new"
    smbclient.reset_connection_cache(connection_cache=kw["connection_cache"])
