"""Typed failures of backup work. Each message names the problem and the fix in one line;
the CLI prints it as is, the API maps the type to a status code."""

from __future__ import annotations


class BackupError(Exception):
    """Base class: something prevented a backup, verify, restore or prune."""

    def __init__(self, message: str | None = None) -> None:
        # Raised without a message, an error says its docstring's first line.
        super().__init__(message or (self.__doc__ or "").split("\n", 1)[0])


class BackupNotFound(BackupError):
    """No backup of that name in the backup directory."""


class BackupBusy(BackupError):
    """Another backup or restore of the same database is running (advisory lock held)."""


class CorruptBackup(BackupError):
    """A file is missing, truncated, altered, or the manifest is unreadable."""


class WrongPassphrase(BackupError):
    """The configuration bundle does not decrypt with BACKUP_PASSPHRASE."""


class PassphraseRequired(BackupError):
    """Configuration would be stored or read but no BACKUP_PASSPHRASE is set."""


class ToolError(BackupError):
    """pg_dump / pg_restore / psql missing, failing, or older than the server."""


class IncompatibleBackup(BackupError):
    """The backup was made by a newer Cronicorn (its schema revision is unknown here)."""


class ActiveClients(BackupError):
    """A restore would pull the database from under running Cronicorn processes."""


class DiskFull(BackupError):
    """Writing the backup failed for lack of space; nothing partial was kept."""


class RestoreFailed(BackupError):
    """A restore stopped halfway; the message says how to recover from the safety backup."""


class TargetError(BackupError):
    """An off-site target could not be reached, or an upload did not verify."""


class ConfigExists(BackupError):
    """Restoring configuration would overwrite an existing file without --overwrite."""
