"""The exceptions that end a command with one line instead of a traceback.

* :class:`InputError`: bad user input (a file, a name, an option value). The CLI prints
  ``error: <message>`` and exits with code 2.
* :class:`MachineError`: the machine failed, not the input: a full disk, a storage folder
  that vanished or turned read-only. The CLI prints ``error: <message>``, what to do, and
  the command that continues the work, on one line, and exits with code 75 (sysexits'
  ``EX_TEMPFAIL``: try again later).

``--debug`` shows the traceback instead. Messages name the file or folder and say what to do.
:func:`machine_error` is the one place that tells an ``OSError`` of the machine (see
``DISK_FULL_ERRNOS`` and ``STORAGE_LOST_ERRNOS``) from any other error.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""No space left, quota exceeded, file too large (what a file-size limit, RLIMIT_FSIZE, raises)."""
STORAGE_LOST_ERRNOS = frozenset({errno.EROFS, errno.ESTALE, errno.ENOTCONN, errno.EIO})
"""Read-only file system, stale network handle, share not connected, I/O error."""


class InputError(Exception):
    """Bad input from the user: a file, a dataset or family name, an option value."""


class MachineError(OSError):
    """The machine stopped the command: a full disk, a storage folder gone or read-only.

    An ``OSError``, so that code which treats a failed write as best effort (``except
    OSError``) still does. ``remedy``: what the user does first ("free some space"); ``continue_command``: the
    command that continues the work once that is done (None: the CLI names the command as
    typed; ``tune`` sets it to its ``--resume`` command). The message is one line.
    """

    def __init__(self, message: str, remedy: str = "fix that"):
        super().__init__(message)
        self.remedy = remedy
        self.continue_command: str | None = None


def format_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def os_error_in(error: BaseException | None) -> OSError | None:
    """The first ``OSError`` with an errno in ``error``, its cause chain, or (a trial's
    ``RayTaskError``) the exception it carries from the worker; None if there is none."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            return error
        cause = getattr(error, "cause", None)  # ray.exceptions.RayTaskError: the worker's exception
        error = cause if isinstance(cause, BaseException) else (error.__cause__ or error.__context__)
    return None


NO_ROOM = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EFBIG: "a file would exceed the file-size limit"}


def disk_full(folder: str | Path, needed: int | None = None, *, at_least: bool = False,
              kept: str = "nothing already there was changed", code: int = errno.ENOSPC) -> MachineError:
    """The error for no room under ``folder`` (``code``: which of ``DISK_FULL_ERRNOS``): its
    free space (``shutil.disk_usage``), roughly what the step needed (``needed`` bytes;
    ``at_least``: what it had written when the disk filled) and what was kept."""
    try:
        usage = shutil.disk_usage(_existing(folder))
        space = f"{format_bytes(usage.free)} free of {format_bytes(usage.total)}"
    except OSError:
        space = "free space unknown"
    need = ""
    if needed is not None:
        need = f"; this step needed {'more than' if at_least else 'about'} {format_bytes(needed)}"
    return MachineError(f"{folder}: {NO_ROOM.get(code, NO_ROOM[errno.ENOSPC])} ({space}{need}); {kept}",
                        remedy="free some space")


def storage_lost(folder: str | Path, what: str, kept: str = "nothing already there was changed") -> MachineError:
    """The error for a folder that vanished or turned read-only (``what`` says which)."""
    return MachineError(f"{folder}: {what}; {kept}", remedy="bring the folder back (mount it again, make it writable)")


def machine_error(error: BaseException, folder: str | Path, needed: int | None = None, *,
                  at_least: bool = False, kept: str = "nothing already there was changed") -> MachineError | None:
    """The :class:`MachineError` that ``error`` amounts to while writing into ``folder``, or
    None when it is something else (a bug, bad input): the one translation of the machine's
    ``OSError`` into a message."""
    if isinstance(error, MachineError):
        return error
    found = os_error_in(error)
    if found is None:
        return None
    if found.errno in DISK_FULL_ERRNOS:
        return disk_full(folder, needed, at_least=at_least, kept=kept, code=found.errno)
    if found.errno in STORAGE_LOST_ERRNOS:
        return storage_lost(folder, f"cannot be written ({found.strerror or os.strerror(found.errno)})", kept)
    return None


def as_machine_error(error: OSError) -> MachineError | None:
    """The last resort, for an ``OSError`` of the machine raised outside :mod:`tuning.atomic`
    (a lock file, a log): the folder of the file it names, and that the command stopped
    while writing it (what it had written before is not known here). None: not the machine's."""
    if isinstance(error, MachineError):
        return error
    where = Path(error.filename).parent if error.filename else Path.cwd()
    return machine_error(error, where, kept=f"the command stopped while writing {error.filename or 'a file'}")


def _existing(folder: str | Path) -> Path:
    """``folder`` or its nearest existing parent (disk_usage needs a path that exists)."""
    path = Path(folder).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path
