"""LocalStorage and root handling: nothing outside the caja root is ever read (SPEC §1)."""

from __future__ import annotations

import errno
import os
import sys
import threading

import pytest
from pyfakefs.fake_filesystem_unittest import Patcher

from syscafe_sync.errors import OutsideRoot, UsageError
from syscafe_sync.storage import normalise_root, open_root, root_key
from syscafe_sync.storage.local import LocalStorage


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "caja"
    (r / "movements" / "2026-11-22").mkdir(parents=True)
    (r / "caja.json").write_text('{"format": 1}', encoding="utf-8")
    (r / "movements" / "2026-11-22" / "FV1-1.json").write_text("{}", encoding="utf-8")
    return r


@pytest.fixture
def outside(tmp_path):
    o = tmp_path / "outside"
    o.mkdir()
    (o / "secret.json").write_text('{"secret": true}', encoding="utf-8")
    return o


# --- names that could leave the root -------------------------------------------------------------

@pytest.mark.parametrize("rel", [
    "..",
    "../outside/secret.json",
    "movements/../../outside/secret.json",
    "movements/./2026-11-22/FV1-1.json",
    "/etc/passwd",
    "movements\\2026-11-22\\FV1-1.json",
    "movements//2026-11-22/FV1-1.json",
    "movements/",
    "C:/Windows/win.ini",
    "caja.json\x00",
])
def test_read_refuses_names_that_could_leave_the_root(root, rel):
    with pytest.raises(OutsideRoot) as err:
        LocalStorage(str(root)).read(rel)
    assert repr(rel) in str(err.value)


@pytest.mark.parametrize("rel", ["..", "../outside", "/tmp", "movements\\2026-11-22", "movements//2026-11-22"])
def test_list_refuses_names_that_could_leave_the_root(root, rel):
    with pytest.raises(OutsideRoot):
        LocalStorage(str(root)).list(rel)


def test_plain_read_and_list_inside_the_root(root):
    st = LocalStorage(str(root))
    assert st.read("caja.json") == b'{"format": 1}'
    assert sorted(e.name for e in st.list("")) == ["caja.json", "movements"]
    [entry] = st.list("movements/2026-11-22")
    # A local listing does not stat each file (a syscall per voucher); read() enforces the size limit.
    assert (entry.name, entry.is_dir, entry.size, entry.outside) == ("FV1-1.json", False, None, False)


# --- links ----------------------------------------------------------------------------------------

def test_file_link_leading_outside_is_refused_on_read(root, outside):
    (root / "movements" / "2026-11-22" / "FV1-2.json").symlink_to(outside / "secret.json")
    with pytest.raises(OutsideRoot) as err:
        LocalStorage(str(root)).read("movements/2026-11-22/FV1-2.json")
    assert "outside the caja root" in str(err.value)


def test_file_link_leading_outside_is_flagged_in_the_listing(root, outside):
    (root / "movements" / "2026-11-22" / "FV1-2.json").symlink_to(outside / "secret.json")
    entries = {e.name: e for e in LocalStorage(str(root)).list("movements/2026-11-22")}
    assert entries["FV1-2.json"].outside is True
    assert entries["FV1-2.json"].size is None
    assert entries["FV1-1.json"].outside is False


def test_folder_link_leading_outside_is_flagged_and_refused_on_list(root, outside):
    (root / "loyalty").symlink_to(outside, target_is_directory=True)
    st = LocalStorage(str(root))
    entries = {e.name: e for e in st.list("")}
    assert entries["loyalty"].outside is True
    with pytest.raises(OutsideRoot):
        st.list("loyalty")


def test_file_under_a_folder_link_leading_outside_is_refused_on_read(root, outside):
    (root / "rules").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideRoot):
        LocalStorage(str(root)).read("rules/secret.json")


def test_file_under_a_deeper_folder_link_leading_outside_is_refused_on_read(root, outside):
    (root / "movements" / "2026-11-23").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideRoot):
        LocalStorage(str(root)).read("movements/2026-11-23/secret.json")


def test_folder_swapped_for_an_outside_link_after_a_listing_is_refused(root, outside):
    st = LocalStorage(str(root))
    day = root / "movements" / "2026-11-22"
    assert [e.name for e in st.list("movements/2026-11-22")] == ["FV1-1.json"]
    (day / "FV1-1.json").unlink()
    day.rmdir()
    day.symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideRoot):
        st.read("movements/2026-11-22/secret.json")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_under_a_voucher_name_is_refused_without_blocking(root):
    os.mkfifo(root / "movements" / "2026-11-22" / "FV1-2.json")
    outcome: list = []

    def read():
        try:
            outcome.append(LocalStorage(str(root)).read("movements/2026-11-22/FV1-2.json", limit=1024))
        except OSError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # let the blocked open go, then fail
        os.close(os.open(root / "movements" / "2026-11-22" / "FV1-2.json", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO blocked")
    [err] = outcome
    assert isinstance(err, OSError) and err.errno == errno.EINVAL


def test_link_inside_the_root_is_allowed(root):
    (root / "movements" / "2026-11-22" / "FV1-9.json").symlink_to(root / "movements" / "2026-11-22" / "FV1-1.json")
    (root / "today").symlink_to(root / "movements" / "2026-11-22", target_is_directory=True)
    st = LocalStorage(str(root))
    assert st.read("movements/2026-11-22/FV1-9.json") == b"{}"
    entries = {e.name: e for e in st.list("")}
    assert (entries["today"].outside, entries["today"].is_dir) == (False, True)
    assert sorted(e.name for e in st.list("today")) == ["FV1-1.json", "FV1-9.json"]


def test_root_that_is_itself_a_link_works(root, tmp_path):
    link = tmp_path / "caja-link"
    link.symlink_to(root, target_is_directory=True)
    st = LocalStorage(str(link))
    assert st.read("caja.json") == b'{"format": 1}'
    assert {e.name: e.outside for e in st.list("")} == {"caja.json": False, "movements": False}


# --- size limit -----------------------------------------------------------------------------------

def test_file_over_the_limit_raises_efbig(root):
    (root / "big.json").write_bytes(b"x" * 1025)
    with pytest.raises(OSError) as err:
        LocalStorage(str(root)).read("big.json", limit=1024)
    assert err.value.errno == errno.EFBIG
    assert "1024" in str(err.value)


def test_file_exactly_at_the_limit_is_read(root):
    (root / "edge.json").write_bytes(b"x" * 1024)
    assert len(LocalStorage(str(root)).read("edge.json", limit=1024)) == 1024


def test_missing_file_and_folder_raise_file_not_found(root):
    st = LocalStorage(str(root))
    with pytest.raises(FileNotFoundError):
        st.read("movements/2026-11-22/FV1-404.json")
    with pytest.raises(FileNotFoundError):
        st.list("movements/2026-11-23")


# --- a fake file system where it is the point ---------------------------------------------------

def test_odd_names_with_accents_and_spaces_are_listed_and_read():
    with Patcher() as p:
        p.fs.create_file("/cajas/Caja Café Ñandú/caja.json", contents='{"caja": "Ñandú"}', encoding="utf-8")
        p.fs.create_file("/cajas/Caja Café Ñandú/rules/Promoción 2x1.json", contents="{}")
        st = LocalStorage("/cajas/Caja Café Ñandú")
        assert sorted(e.name for e in st.list("")) == ["caja.json", "rules"]
        assert [e.name for e in st.list("rules")] == ["Promoción 2x1.json"]
        assert st.read("rules/Promoción 2x1.json") == b"{}"
        assert st.read("caja.json").decode("utf-8") == '{"caja": "Ñandú"}'


def test_folder_without_read_permission_raises_permission_error():
    with Patcher(allow_root_user=False) as p:
        p.fs.create_file("/cajas/CAJA1/movements/2026-11-22/FV1-1.json", contents="{}")
        os.chmod("/cajas/CAJA1/movements/2026-11-22", 0o000)
        st = LocalStorage("/cajas/CAJA1")
        with pytest.raises(PermissionError):
            st.list("movements/2026-11-22")
        with pytest.raises(PermissionError):
            st.read("movements/2026-11-22/FV1-1.json")


def test_file_without_read_permission_raises_permission_error():
    with Patcher(allow_root_user=False) as p:
        p.fs.create_file("/cajas/CAJA1/caja.json", contents="{}", st_mode=0o100000)
        with pytest.raises(PermissionError):
            LocalStorage("/cajas/CAJA1").read("caja.json")


# --- roots ----------------------------------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="UNC roots are opened by Windows itself there")
@pytest.mark.parametrize("unc", ["\\\\CAJA2\\Syscafe", "\\\\CAJA2\\Syscafe\\Datos\\EMP01", "//CAJA2/Syscafe"])
def test_unc_root_is_refused_on_linux_with_mount_advice(unc):
    with pytest.raises(UsageError) as err:
        normalise_root(unc)
    msg = str(err.value)
    assert repr(unc) in msg
    assert "mount" in msg
    assert "mount point" in msg


@pytest.mark.parametrize("typed", [
    "smb:/pos:Secret-77@caja2/Syscafe/Datos",  # one slash
    "smb:\\\\pos:Secret-77@caja2\\Syscafe",  # Windows' backslashes after the scheme
    "SMB:pos:Secret-77@caja2/Syscafe",
    "cifs://pos:Secret-77@caja2/Syscafe",
])
def test_a_mistyped_share_url_is_refused_not_stored_as_a_folder_with_its_password(typed):
    """Taken for a relative folder, it was registered, password and all, and `caja list` printed it."""
    with pytest.raises(UsageError) as err:
        normalise_root(typed)
    msg = str(err.value)
    assert "looks like a URL but is not an smb:// one" in msg and "smb://user@host[:port]/share/path" in msg
    assert "Secret-77" not in msg


@pytest.mark.skipif(sys.platform == "win32", reason="UNC roots are opened by Windows itself there")
def test_a_unc_root_refused_on_linux_never_shows_a_password_typed_in_it():
    with pytest.raises(UsageError) as err:
        normalise_root("//pos:Secret-77@caja2/Syscafe")
    assert "Secret-77" not in str(err.value) and "mount point" in str(err.value)


def test_a_windows_drive_path_is_not_taken_for_a_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalise_root("C:/Cajas/CAJA2").endswith("C:/Cajas/CAJA2")  # a folder (relative, off Windows), not refused


def test_empty_root_is_refused():
    with pytest.raises(UsageError) as err:
        normalise_root("   ")
    assert "--path" in str(err.value)


def test_local_root_is_made_absolute_and_normalised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalise_root("cajas/CAJA1/") == str(tmp_path / "cajas" / "CAJA1")
    assert normalise_root(f"  {tmp_path}/./cajas//CAJA1  ") == str(tmp_path / "cajas" / "CAJA1")


@pytest.mark.parametrize("a,b", [
    ("/srv/cajas/CAJA1", "/srv/cajas/CAJA1/"),
    ("/srv/cajas/CAJA1", "/srv/cajas/./CAJA1"),
    ("/srv/cajas/CAJA1", "/srv//cajas/CAJA1"),
    ("/srv/cajas/CAJA1", "/srv/cajas/CAJA2/../CAJA1"),
    ("\\\\CAJA2\\Syscafe\\Datos", "\\\\CAJA2\\Syscafe\\Datos\\"),
    ("\\\\CAJA2\\Syscafe\\Datos", "//caja2/syscafe/datos"),
])
def test_root_key_folds_the_same_root_written_twice(a, b):
    assert root_key(a) == root_key(b)


def test_root_key_keeps_different_roots_apart():
    assert root_key("/srv/cajas/CAJA1") != root_key("/srv/cajas/CAJA2")
    assert root_key("\\\\CAJA1\\Syscafe") != root_key("\\\\CAJA2\\Syscafe")


def test_open_root_gives_local_storage_showing_the_root(root):
    st = open_root(str(root))
    assert isinstance(st, LocalStorage)
    assert st.display == str(root)


# --- read_many: the import's path (a day folder opened once, its files opened from it) ------------

def _many(root, *names, limit=1024):
    return dict(LocalStorage(str(root)).read_many([f"movements/2026-11-22/{n}" for n in names], limit))


def test_read_many_reads_plain_files_and_a_link_that_stays_inside(root):
    day = root / "movements" / "2026-11-22"
    (day / "FV1-9.json").symlink_to(day / "FV1-1.json")
    got = _many(root, "FV1-1.json", "FV1-9.json")
    assert got == {"movements/2026-11-22/FV1-1.json": b"{}", "movements/2026-11-22/FV1-9.json": b"{}"}


def test_read_many_refuses_a_link_leading_outside_and_reads_the_rest(root, outside):
    (root / "movements" / "2026-11-22" / "FV1-2.json").symlink_to(outside / "secret.json")
    with pytest.raises(OutsideRoot):
        _many(root, "FV1-2.json")
    assert _many(root, "FV1-1.json") == {"movements/2026-11-22/FV1-1.json": b"{}"}


def test_read_many_refuses_a_day_folder_swapped_for_an_outside_link(root, outside):
    day = root / "movements" / "2026-11-22"
    (day / "FV1-1.json").unlink()
    day.rmdir()
    day.symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideRoot):
        _many(root, "secret.json")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_read_many_gives_each_file_its_own_error_without_blocking(root):
    day = root / "movements" / "2026-11-22"
    os.mkfifo(day / "FV1-2.json")
    (day / "FV1-3.json").write_bytes(b"x" * 1025)
    (day / "FV1-4.json").write_bytes(b"x" * 1024)
    got = _many(root, "FV1-2.json", "FV1-3.json", "FV1-4.json", "FV1-5.json")
    errors = {k.rsplit("/", 1)[1]: v.errno for k, v in got.items() if isinstance(v, OSError)}
    assert errors == {"FV1-2.json": errno.EINVAL, "FV1-3.json": errno.EFBIG, "FV1-5.json": errno.ENOENT}
    assert len(got["movements/2026-11-22/FV1-4.json"]) == 1024


def test_a_file_longer_than_its_size_said_is_still_read_whole(tmp_path):
    """The first read is sized by fstat; a file that grew since is read to its end, within the limit."""
    from syscafe_sync.storage import local

    p = tmp_path / "grew.json"
    p.write_bytes(b"0123456789")
    fd = os.open(p, os.O_RDONLY)
    assert local._read_whole(fd, str(p), limit=100, size=3) == b"0123456789"
    fd = os.open(p, os.O_RDONLY)
    with pytest.raises(OSError) as exc:
        local._read_whole(fd, str(p), limit=5, size=3)
    assert exc.value.errno == errno.EFBIG


# --- writes: the catalog push -------------------------------------------------------------------

def test_a_temp_file_whose_write_fills_the_disk_is_removed():
    with Patcher() as p:
        p.fs.set_disk_usage(100_000, "/")
        p.fs.create_file("/cajas/CAJA1/catalogs/manifest.json", contents="old")
        st = LocalStorage("/cajas/CAJA1")
        with pytest.raises(OSError) as full:
            st.write_atomic("catalogs/products.7.snapshot.json", b"x" * 200_000)
        assert full.value.errno == errno.ENOSPC
        assert os.listdir("/cajas/CAJA1/catalogs") == ["manifest.json"]  # no half snapshot filling the disk further
        st.write_atomic("catalogs/manifest.json", b"new")  # the room is there again for what fits
        assert open("/cajas/CAJA1/catalogs/manifest.json", "rb").read() == b"new"
