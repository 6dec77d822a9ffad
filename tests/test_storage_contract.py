"""One contract for every kind of caja root: the same test against a local folder and an smb:// share."""

from __future__ import annotations

import errno
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from syscafe_sync import config as config_mod
from syscafe_sync.errors import OutsideRoot, ShortFile
from syscafe_sync.storage import open_root


@pytest.fixture(params=["local", "smb"])
def root(request, tmp_path):
    """(storage, the same folder on this machine's disk). On smb:// every test ends with nothing held
    open on the server: each step opens and closes its file in one compound request, also when it fails
    (a missing file, a read past the end, a short journal), and a handle left open would hold the POS's
    own writes to that file for as long as the service runs."""
    if request.param == "local":
        folder = tmp_path / "caja"
        folder.mkdir()
        yield open_root(str(folder)), folder
        return
    smb_caja, home = request.getfixturevalue("smb_caja"), request.getfixturevalue("home")
    folder, url = smb_caja("CAJA1", "caja1")
    yield open_root(url, config_mod.load(home), "CAJA1"), folder.root
    assert request.getfixturevalue("samba").open_files() == []


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
    # Shorter than the writer expects (cut by someone else): refused whole, never padded with a gap.
    with pytest.raises(ShortFile, match="holds 8 bytes; 9 were expected"):
        st.append("catalogs/j.jsonl", b"three\n", at=9)
    with pytest.raises(ShortFile, match="is missing"):
        st.append("catalogs/gone.jsonl", b"x\n", at=1)
    assert sorted(p.name for p in (disk / "catalogs").iterdir()) == ["j.jsonl", "manifest.json"]
    assert (disk / "catalogs" / "j.jsonl").read_bytes() == b"one\nTWO\n"
    st.remove("catalogs/j.jsonl")
    st.remove("catalogs/j.jsonl")  # already gone: fine
    assert sorted(p.name for p in (disk / "catalogs").iterdir()) == ["manifest.json"]


@pytest.mark.parametrize("size", [10, 100_000], ids=["one-request", "many-requests"])
def test_what_is_left_under_the_temporary_name_is_replaced_never_written_through(root, size):
    """A killed push leaves its temporary file; anyone who can write the share may leave a link there.
    Opened to be overwritten, the link had the new file written to where it leads (outside the root,
    or another caja's folder of the same share), then was renamed over the final name."""
    st, disk = root
    data = bytes(i % 251 for i in range(size))
    other = disk.parent / "other-caja.json"  # outside the caja root; on smb:// still inside the share
    other.write_bytes(b"another caja's file")
    (disk / "catalogs").mkdir()
    (disk / "catalogs" / ".manifest.json.tmp").symlink_to(other)
    (disk / "catalogs" / ".products.1.snapshot.json.tmp").write_bytes(b"y" * (size + 70_000))  # a killed push's
    st.write_atomic("catalogs/manifest.json", data)
    st.write_atomic("catalogs/products.1.snapshot.json", data)
    assert other.read_bytes() == b"another caja's file"
    for name in ("manifest.json", "products.1.snapshot.json"):
        assert not (disk / "catalogs" / name).is_symlink() and (disk / "catalogs" / name).read_bytes() == data
    assert sorted(p.name for p in (disk / "catalogs").iterdir()) == ["manifest.json", "products.1.snapshot.json"]


@pytest.mark.parametrize("files", [0, 1, 1200])
def test_a_folder_lists_whole_however_many_files_it_holds(root, files):
    """1,200 long names are more than one answer of the share (64 KiB): the listing goes on past it."""
    st, disk = root
    day = disk / "movements" / "2026-11-22"
    day.mkdir(parents=True)
    (day / "sub").mkdir()
    names = {f"FV1-{n:08d}-una-factura-de-nombre-largo-para-llenar-la-respuesta.json": n % 97 for n in range(files)}
    for name, size in names.items():
        (day / name).write_bytes(b"x" * size)
    entries = st.list("movements/2026-11-22")
    files_listed = {e.name: e.size for e in entries if not e.is_dir}
    assert files_listed.keys() == names.keys()
    assert all(size in (None, names[name]) for name, size in files_listed.items())  # a local listing gives no sizes
    assert [e.name for e in entries if e.is_dir] == ["sub"]


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 300_000])
def test_files_of_any_size_read_and_write_whole(root, size):
    """Around one request's worth (64 KiB, what smb:// sends with its open and close in one round trip)."""
    st, disk = root
    data = bytes(i % 251 for i in range(size))
    st.makedirs("catalogs")
    st.write_atomic("catalogs/f.json", data)
    assert (disk / "catalogs" / "f.json").read_bytes() == data
    assert st.read("catalogs/f.json") == data
    assert st.read_range("catalogs/f.json", 0) == data
    assert st.read_range("catalogs/f.json", 7) == data[7:]
    assert st.read_range("catalogs/f.json", size // 2, 70_000) == data[size // 2:size // 2 + 70_000]
    assert st.read_head("catalogs/f.json", 65536) == data[:65536]
    assert st.read_range("catalogs/f.json", size) == b"" and st.read_range("catalogs/f.json", size + 10, 5) == b""
    assert st.read_head("catalogs/f.json", 0) == b""
    with pytest.raises(FileNotFoundError):
        st.read_head("catalogs/nope.json", 0)
    if size:
        with pytest.raises(OSError) as big:
            st.read("catalogs/f.json", limit=size - 1)
        assert big.value.errno == errno.EFBIG
    assert st.append("catalogs/j.jsonl", data, at=0) == size
    assert st.append("catalogs/j.jsonl", data, at=size) == 2 * size
    assert st.append("catalogs/j.jsonl", b"tail\n", at=size) == size + 5  # cut back first, whatever its size
    assert (disk / "catalogs" / "j.jsonl").read_bytes() == data + b"tail\n"
    assert sorted(p.name for p in (disk / "catalogs").iterdir()) == ["f.json", "j.jsonl"]


@pytest.mark.parametrize("reader_shares", [None, "rwd"], ids=["sharing-nothing", "sharing-delete"])
def test_a_file_held_open_on_the_share_is_retried_then_refused_and_the_temp_removed(smb_caja, home, samba, reader_shares):
    import smbclient

    from samba import PASSWORD, USER

    folder, url = smb_caja("CAJA1", "caja1")
    st = open_root(url, config_mod.load(home), "CAJA1")
    st.makedirs("catalogs")
    st.write_atomic("catalogs/manifest.json", b"old")
    # Another client (the POS) holds the manifest open. Sharing nothing, the replace meets a sharing
    # violation; sharing delete too, Samba (as Windows) answers access denied, and only the open
    # file tells the two apart.
    path = "\\\\127.0.0.1\\caja1\\Datos\\EMP01\\catalogs\\manifest.json"
    kw = {"port": samba.port, "username": USER, "password": PASSWORD, "connection_cache": {}}
    # Samba (4.17) holds a file open against another client's replace only when both opens come from one
    # client GUID; a Windows caja does so between any two clients, as the POS and the main server are. So
    # this "POS" dials with the main server's GUID, to meet the answer a Windows caja gives.
    from smbprotocol.connection import Connection

    from syscafe_sync.storage import smb as smb_mod

    [ours] = smb_mod._CACHES[st._key].values()
    pos = Connection(ours.client_guid, "127.0.0.1", samba.port, require_signing=True)
    pos.connect(timeout=10)
    kw["connection_cache"][f"127.0.0.1:{samba.port}"] = pos
    with smbclient.open_file(path, "rb", share_access=reader_shares, **kw):
        started = time.monotonic()
        with pytest.raises(PermissionError, match="held open by another program .*; tried 6 times"):
            st.write_atomic("catalogs/manifest.json", b"new")
        assert time.monotonic() - started >= 3.0  # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s of backoff between the tries
    assert sorted(p.name for p in (folder.root / "catalogs").iterdir()) == ["manifest.json"]
    assert (folder.root / "catalogs" / "manifest.json").read_bytes() == b"old"
    st.write_atomic("catalogs/manifest.json", b"new")  # released: it goes through
    assert (folder.root / "catalogs" / "manifest.json").read_bytes() == b"new"
    smbclient.reset_connection_cache(connection_cache=kw["connection_cache"])


@pytest.fixture(scope="module")
def strict_server(samba):
    """An smbd of its own whose disk fills up at 1 MiB a file, with a share "locked" served as the share's
    user, where the folder's own permissions deny. In a folder open to that user, unlike pytest's."""
    from samba import SambaServer

    base = Path(tempfile.mkdtemp(prefix="syscafe-smb-"))
    server = SambaServer(base, shares=("full",), as_user=("locked",), max_file_bytes=1 << 20).start()
    yield server
    server.stop()
    shutil.rmtree(base)


@pytest.fixture
def strict(strict_server, monkeypatch):
    """share → (its storage, its folder on disk), emptied for each test."""
    from samba import PASSWORD

    monkeypatch.setenv("SYSCAFE_SYNC_SMB_PASSWORD", PASSWORD)
    strict_server.empty()
    yield lambda share: (open_root(strict_server.url(share)), strict_server.shares[share])
    assert strict_server.open_files() == []  # what failed closed its file too


def test_a_temp_file_whose_write_fails_is_removed(strict):
    st, disk = strict("full")
    st.makedirs("catalogs")
    st.write_atomic("catalogs/manifest.json", b"old")
    with pytest.raises(OSError) as full:
        st.write_atomic("catalogs/manifest.json", b"x" * (2 << 20))  # past what the disk takes
    assert full.value.errno == errno.ENOSPC and "STATUS_DISK_FULL" in str(full.value)
    assert sorted(p.name for p in (disk / "catalogs").iterdir()) == ["manifest.json"]  # the half-written temp went
    assert (disk / "catalogs" / "manifest.json").read_bytes() == b"old"
    # An append small enough for one compound request (open, write, flush, close) that the disk refuses.
    (disk / "catalogs" / "j.jsonl").write_bytes(b"x" * ((1 << 20) - 10))
    with pytest.raises(OSError) as full:
        st.append("catalogs/j.jsonl", b"y" * 100, at=(1 << 20) - 10)
    assert full.value.errno == errno.ENOSPC and "STATUS_DISK_FULL" in str(full.value)
    assert (disk / "catalogs" / "j.jsonl").stat().st_size <= 1 << 20


def test_access_denied_is_said_as_such_and_not_retried(strict):
    st, disk = strict("locked")
    # Served as the share's user: a folder of root's it cannot write in, and a sticky one where it
    # may write but not replace root's file (the kernel's rule, which Samba answers as access denied).
    (disk / "closed").mkdir(mode=0o755)
    sticky = disk / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "manifest.json").write_bytes(b"root's")
    for rel in ("closed/manifest.json", "sticky/manifest.json"):
        started = time.monotonic()
        with pytest.raises(PermissionError) as denied:
            st.write_atomic(rel, b"new")
        assert time.monotonic() - started < 1.0, f"{rel}: retried as if held open"
        assert "access denied (STATUS_ACCESS_DENIED)" in str(denied.value) and "held open" not in str(denied.value)
    assert sorted(p.name for p in sticky.iterdir()) == ["manifest.json"]  # the temp it could write went too
    assert (sticky / "manifest.json").read_bytes() == b"root's" and list((disk / "closed").iterdir()) == []
