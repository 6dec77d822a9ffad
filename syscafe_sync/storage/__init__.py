"""Opening a caja root, whatever kind it is: the rest of the code sees a Storage and nothing else."""

from __future__ import annotations

import os
import re
import sys

from ..config import DEFAULTS
from ..errors import UsageError
from . import smb_url
from .base import Entry, Storage, split_rel
from .local import LocalStorage, check_root_syntax, is_unc

__all__ = ["Entry", "Storage", "open_root", "normalise_root", "root_key", "split_rel"]


def normalise_root(root: str) -> str:
    """The root as stored: local paths made absolute; UNC kept as given; smb:// URLs in one spelling, never with a password."""
    root = root.strip()
    if not root:
        raise UsageError("the caja root is empty; give --path with a folder, a UNC path or an smb:// URL.")
    if smb_url.is_smb(root):
        return smb_url.parse(root).root
    if _URL_LIKE.match(root):
        # Taken for a local folder, "smb:/pos:pw@caja2/…" was stored whole, password and all, and printed by `caja list`.
        raise UsageError(f"root {smb_url.hide_userinfo(root)!r} looks like a URL but is not an smb:// one; write a share as "
                         f"smb://user@host[:port]/share/path (two slashes), with the password in config.toml or "
                         f"{smb_url.ENV_PASSWORD}, never in the root; a folder as a path.")
    check_root_syntax(root)
    if is_unc(root):
        return root
    return os.path.abspath(os.path.expanduser(root))


# A scheme of two letters or more (so never a drive letter, C:\ or C:/) then a separator; or smb: however it goes on.
_URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:[\\/]|smb:", re.IGNORECASE)


def root_key(root: str) -> str:
    """What two roots are compared by: the same folder written twice is one root."""
    if smb_url.is_smb(root):
        return smb_url.parse(root).key
    if is_unc(root):
        return _unc_key(root)
    key = os.path.normcase(os.path.normpath(root))
    return key.lower() if sys.platform == "win32" else key


def _unc_key(root: str) -> str:
    """The key of \\\\HOST\\SHARE\\PATH: that of smb://HOST/SHARE/PATH, the same folder of the same share.
    Windows reads `/` as `\\`, a run of separators as one, `.` as nothing and `..` as the folder above
    (never above the share), and compares names without regard to case; so does the key."""
    written = [p for p in re.split(r"[\\/]+", root.strip()) if p not in ("", ".")]
    # \\?\UNC\HOST\SHARE, Windows' long-path spelling, names the same share.
    if len(written) > 2 and written[0] in ("?", ".") and written[1].upper() == "UNC":
        written = written[2:]
    parts: list[str] = []
    for part in written:
        if part != "..":
            parts.append(part)
        elif len(parts) > 2:
            parts.pop()
    if len(parts) < 2:
        # A host without a share is no folder: kept apart from every real root.
        return "\\\\" + "\\".join(parts).lower()
    host, share, *rest = parts
    return smb_url.SmbUrl(host.lower(), smb_url.DEFAULT_PORT, None, share, tuple(rest), False).key


def open_root(root: str, config=None, caja: str | None = None) -> Storage:
    """The one place a root is opened. `config` gives smb:// roots their credentials and bounds
    (without it: the environment and the defaults); `caja` picks its own credentials, if any."""
    if not smb_url.is_smb(root):
        return LocalStorage(root)
    from .smb import SmbStorage  # smbprotocol is loaded only where an smb:// root is used

    url = smb_url.parse(root)
    values = config.values if config is not None else DEFAULTS
    limits = values["limits"]
    creds = smb_url.credentials(url, values.get("smb"), caja)
    return SmbStorage(url, creds, limits["connect_timeout_s"], limits["smb_read_workers"], limits["smb_step_timeout_s"],
                      config.config_path if config is not None else None)
