"""Opening a caja root, whatever kind it is."""

from __future__ import annotations

import ntpath
import os
import sys

from ..errors import UsageError
from .base import Entry, Storage, split_rel
from .local import LocalStorage, check_root_syntax, is_unc

__all__ = ["Entry", "Storage", "open_root", "normalise_root", "root_key", "split_rel"]


def normalise_root(root: str) -> str:
    """The root as stored: local paths made absolute; UNC and URLs kept as given."""
    root = root.strip()
    if not root:
        raise UsageError("the caja root is empty; give --path with a folder, a UNC path or an smb:// URL.")
    if root.lower().startswith("smb://"):
        raise UsageError(
            f"root {root!r}: smb:// roots are not supported by this version yet; mount the share and give the mount point."
        )
    check_root_syntax(root)
    if is_unc(root):
        return root
    return os.path.abspath(os.path.expanduser(root))


def root_key(root: str) -> str:
    """What two roots are compared by: the same folder written twice is one root."""
    if is_unc(root):
        return ntpath.normcase(root.replace("/", "\\")).rstrip("\\")
    key = os.path.normcase(os.path.normpath(root))
    return key.lower() if sys.platform == "win32" else key


def open_root(root: str) -> Storage:
    return LocalStorage(root)
