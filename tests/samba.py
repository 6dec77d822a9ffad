"""A real Samba server on loopback for the smb:// tests and the SMB benchmark.

`smbd` runs in the foreground, in its own process group (so SIGSTOP reaches
the per-connection children too), on a free high port of 127.0.0.1, with a
throw-away configuration, state and user under one folder. Debian's `samba`
package and root are needed: a system user and its Samba password are
created. Where they are missing the tests skip with the reason, except under
CI=true, where they fail.

Shares are served as root (`force user`) unless named in `as_user`: those are
served as the share's user itself, so the server's own permission checks
deny what the folder's mode denies (an access denied that is not a file held
open). `max_file_bytes` makes a disk that fills up: smbd cannot write a file
past that size (RLIMIT_FSIZE) and answers STATUS_DISK_FULL.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

USER = "syncuser"
PASSWORD = "Caja-Pass-7731"  # distinctive, so tests can look for it in logs and output

CONF = """\
[global]
  workgroup = WORKGROUP
  server role = standalone server
  smb ports = {port}
  interfaces = {interface}
  bind interfaces only = yes
  pid directory = {d}/run
  lock directory = {d}/lock
  state directory = {d}/lock
  cache directory = {d}/cache
  private dir = {d}/priv
  log file = {d}/log/log.%m
  passdb backend = tdbsam:{d}/priv/passdb.tdb
  disable netbios = yes
  server min protocol = SMB2
  load printers = no
  printing = bsd
  printcap name = /dev/null
{shares}"""

SHARE = """\
[{name}]
  path = {path}
  read only = no
  valid users = {user}
"""


def unavailable() -> str | None:
    """Why a Samba server cannot be started here, or None when it can."""
    if not all(shutil.which(tool) for tool in ("smbd", "smbpasswd", "smbstatus")):
        return "smbd is not installed (Debian: apt-get install -y samba)"
    if os.geteuid() != 0:
        return "starting smbd with its own user needs root"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SambaServer:
    """One smbd with shares under `base/shares/<name>`; `url(share)` gives the smb:// root."""

    def __init__(self, base: Path, shares: tuple[str, ...] = ("caja1", "caja2", "caja3"), as_user: tuple[str, ...] = (),
                 max_file_bytes: int | None = None, address: str = "127.0.0.1", prefix: tuple[str, ...] = ()):
        """`address`, `prefix`: where smbd listens and what it is started under, for a benchmark that runs it in
        another network namespace (bench/lan.py: `ip netns exec NS`); the tests keep loopback."""
        self.base, self.port = base, free_port()
        self.address, self.prefix = address, list(prefix)
        self.shares = {name: base / "shares" / name for name in shares + as_user}
        self.as_user, self.max_file_bytes = as_user, max_file_bytes
        self.conf = base / "smb.conf"
        self.proc: subprocess.Popen | None = None

    def empty(self) -> None:
        """Deletes what the shares hold, for the next test."""
        for path in self.shares.values():
            for child in path.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()

    def url(self, share: str, path: str = "", user: str = USER) -> str:
        return f"smb://{user}@{self.address}:{self.port}/{share}" + (f"/{path}" if path else "")

    def start(self) -> "SambaServer":
        for sub in ("run", "lock", "cache", "priv", "log"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        for path in self.shares.values():
            path.mkdir(parents=True, exist_ok=True)
        shares = "".join(SHARE.format(name=n, path=p, user=USER) + ("" if n in self.as_user else "  force user = root\n")
                         for n, p in self.shares.items())
        if self.as_user:
            # The share's user must reach its folder: no folder above it may be closed to others.
            for folder in self.base.parents:
                if not os.stat(folder).st_mode & 0o001:
                    raise RuntimeError(f"{folder} is closed to other users; put a SambaServer with as_user shares in an open folder")
            os.chmod(self.base, 0o755)
        interface = "lo" if self.address == "127.0.0.1" else self.address
        self.conf.write_text(CONF.format(port=self.port, d=self.base, shares=shares, interface=interface))
        _ensure_user()
        subprocess.run(["smbpasswd", "-c", str(self.conf), "-s", "-a", USER], input=f"{PASSWORD}\n{PASSWORD}\n",
                       text=True, check=True, capture_output=True)
        log = open(self.base / "log" / "smbd.out", "wb")
        # Its own session: SIGSTOP/SIGCONT reach the daemon and its per-connection children at once.
        # stdin a pipe we hold open: smbd in the foreground ends when its stdin reaches end of file
        # (a /dev/null or a closed stdin, as under CI or `python -`, would stop it at once).
        self.proc = subprocess.Popen([*self.prefix, "smbd", "-s", str(self.conf), "--foreground", "--no-process-group"],
                                     stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=self._limit_file_size if self.max_file_bytes else None)
        log.close()
        self._wait_for_port(20.0)
        return self

    def _limit_file_size(self) -> None:
        # In the child before smbd starts: the limit and the ignored SIGXFSZ are inherited by smbd, so
        # a write past the limit fails with EFBIG (which smbd answers as a full disk) instead of killing it.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_file_bytes, self.max_file_bytes))

    def _wait_for_port(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"smbd exited with {self.proc.returncode}; see {self.base / 'log'}")
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"smbd did not answer on {self.address}:{self.port} within {timeout:g} s")

    def open_files(self) -> list[str]:
        """The files some client holds open on this server now (smbstatus), as share-relative names."""
        out = subprocess.run(["smbstatus", "-s", str(self.conf), "-L"], capture_output=True, text=True, check=True).stdout
        lines = [ln.strip() for ln in out.splitlines()]
        # A header, a line of dashes, then one row an open file; "No locked files" when there is none.
        rule = next((i for i, ln in enumerate(lines) if ln and set(ln) == {"-"}), None)
        return [] if rule is None else [ln for ln in lines[rule + 1:] if ln]

    def freeze(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.thaw()
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.proc and self.proc.stdin:
            self.proc.stdin.close()


def _ensure_user() -> None:
    """The system user Samba maps the share's user to; created once, without a home."""
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", USER], check=True, capture_output=True)
