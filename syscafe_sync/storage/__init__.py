"""Opening a caja root, whatever kind it is: the rest of the code sees a Storage and nothing else."""

from __future__ import annotations

import ntpath
import os
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
    check_root_syntax(root)
    if is_unc(root):
        return root
    return os.path.abspath(os.path.expanduser(root))


def root_key(root: str) -> str:
    """What two roots are compared by: the same folder written twice is one root."""
    if smb_url.is_smb(root):
        return smb_url.parse(root).key
    if is_unc(root):
        return ntpath.normcase(root.replace("/", "\\")).rstrip("\\")
    key = os.path.normcase(os.path.normpath(root))
    return key.lower() if sys.platform == "win32" else key


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
