"""The one exception tree and the exit codes of the SPEC.

A verdict is data (a ``Report`` with findings); being unable to verify is an exception.
Every exception carries a one-line ``message`` that names the problem and a ``hint`` that
names the fix. ``cli.py`` is the only place that turns them into exit codes.
"""

from __future__ import annotations

import enum


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (a driver's error can run to many), or its class
    name when it says nothing: what a one-line message quotes."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


class ExitCode(enum.IntEnum):
    """Exit codes promised by the SPEC."""

    OK = 0  # verified: restored cleanly and every check passed
    FAILED = 1  # verification failed: did not restore cleanly, or differs from its reference
    BAD_INPUT = 2  # bad input or usage: missing/unreadable backup, unknown format, malformed URL
    ENVIRONMENT = 3  # environment failure: no target, tools missing, source unreachable


class RestorecheckError(Exception):
    """Base of every error restorecheck raises on purpose."""

    exit_code: ExitCode = ExitCode.ENVIRONMENT

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and the fix on one line, as printed on stderr."""
        text = " ".join(self.message.split())
        if self.hint:
            text = f"{text} ({' '.join(self.hint.split())})"
        return text

    def __str__(self) -> str:
        return self.one_line()


class BadInputError(RestorecheckError):
    """The user gave something restorecheck cannot use: exit 2."""

    exit_code = ExitCode.BAD_INPUT


class BackupNotFoundError(BadInputError):
    """The backup file or directory does not exist or cannot be read."""


class UnknownFormatError(BadInputError):
    """The file is not a backup restorecheck recognises."""


class BadURLError(BadInputError):
    """A database URL or path that cannot be parsed."""


class BadManifestError(BadInputError):
    """A manifest that is not JSON, or not a restorecheck manifest, or of an unknown version."""


class TargetNotEmptyError(BadInputError):
    """``seed`` refused a target that already holds tables."""


class EnvironmentFailure(RestorecheckError):
    """restorecheck could not do its job here: exit 3."""

    exit_code = ExitCode.ENVIRONMENT


class ToolNotFoundError(EnvironmentFailure):
    """A needed program (pg_dump, pg_restore, initdb, ...) was not found."""


class ProvisionError(EnvironmentFailure):
    """No throwaway target could be provisioned."""


class ScratchDatabaseReplacedError(EnvironmentFailure):
    """The database restorecheck restored into was dropped, replaced or given away during the
    restore: whatever is there now is not what the backup restored, so there is no verdict."""


class SourceUnreachableError(EnvironmentFailure):
    """The source database could not be reached or read."""


class Interrupted(EnvironmentFailure):
    """Stopped by Ctrl-C or SIGTERM; everything started was cleaned up."""
