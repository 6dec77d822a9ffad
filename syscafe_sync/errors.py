"""The error hierarchy. Only the CLI turns these into sentences and exit codes."""

from __future__ import annotations


class SyncError(Exception):
    """Something went wrong; the message is one plain sentence naming the value and the fix."""

    exit_code = 1


class UsageError(SyncError):
    """A usage or validation error: nothing was changed (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file or an option holds a value we cannot use."""


class NotInitialised(UsageError):
    """The home or its database has not been created yet."""


class RegistryError(UsageError):
    """A caja registration that would break the registry's rules."""


class UnknownCaja(UsageError):
    """A caja name that is not registered."""


class DatabaseDown(SyncError):
    """The database server did not answer: not started yet, restarting, unreachable or out of connections.

    Exit 1, not 2: nothing is wrong with the command, and a service manager that restarts on failure
    tries again (the systemd unit's RestartPreventExitStatus=2 would leave the service dead after a
    boot where PostgreSQL comes up after syscafe-sync)."""


class OutsideRoot(SyncError):
    """A path that would leave the caja root (`..`, a separator, a link leading out)."""


class ShortFile(SyncError):
    """A file holds fewer bytes than a writer about to append at its end expected: cut or replaced by someone else."""


class Unreachable(SyncError):
    """The caja root did not answer within its time bound."""


class Busy(SyncError):
    """Another run holds the caja."""


class LeaseLost(SyncError):
    """A lease ran out while its holder was stalled and another run took it: the holder's transaction is rolled back."""


class CredentialsRefused(SyncError):
    """An smb:// root's server refused its user and password, or none were found.

    Not an OSError: a caja's credentials are never mistaken for one bad file."""
