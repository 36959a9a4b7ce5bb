"""Writes that never leave a half-written file: write a temporary sibling, then rename.

``os.replace`` is atomic on one filesystem, so a reader (or a crash) sees either the old
file or the new one, never a mix. ``tempfile.mkstemp`` creates its file with mode 0600
whatever the umask; every temporary here is given the mode an ordinary ``open()`` would
have created (0666 less the umask: 0644 under umask 022), so results a lab shares are
readable by its members.

A write that fails because the machine did (a full disk, a quota, a file-size limit, a
folder turned read-only) raises :class:`tuning.errors.MachineError` naming the folder, its
free space and what the write needed, after everything here was put back as it was: the
one place where such an ``OSError`` becomes a message (:func:`tuning.errors.machine_error`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from tuning.errors import machine_error


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # Elsewhere the only way to read it is to set it; the lock keeps our own threads out.
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def _shareable_temp(path: Path) -> tuple[int, Path]:
    """A temporary sibling of ``path`` (open descriptor, path) with the umask's file mode."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, 0o666 & ~current_umask())
    except OSError:
        pass  # a filesystem without permissions (some network shares): keep its default
    except BaseException:
        os.close(handle)
        os.unlink(tmp)
        raise
    return handle, Path(tmp)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    A full disk while the caller writes the temporary (or before) raises MachineError: the
    temporary is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_path = _shareable_temp(path)
        os.close(handle)
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as error:
        # What the caller had written when the disk filled: a lower bound of what it needed.
        translated = machine_error(error, path.parent, _size(tmp_path) or None, at_least=True)
        if translated is None or translated is error:
            raise
        raise translated from error
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


def _size(path: Path | None) -> int | None:
    try:
        return path.stat().st_size if path is not None else None
    except OSError:
        return None


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_all(files: Mapping[str | Path, bytes]) -> None:
    """Write several files, all or nothing (as far as renames on one filesystem allow).

    Every file is first written to a temporary sibling; a failure there removes the
    temporaries and changes nothing. Then each is renamed into place, the file it replaces
    kept under a second name (a hard link: the old file never disappears from its path);
    a failure part-way through puts every replaced file back, removes the files that did
    not exist before and the folders this call created, then re-raises (a full disk or a
    read-only folder as :class:`tuning.errors.MachineError`).
    """
    created_dirs: list[Path] = []
    staged: list[tuple[Path, Path]] = []  # (temporary, final)
    backups: list[tuple[Path, Path | None]] = []  # (final, backup or None if it was new)
    try:
        for path, content in files.items():
            path = Path(path)
            missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
            path.parent.mkdir(parents=True, exist_ok=True)
            created_dirs.extend(reversed(missing))
            handle, tmp = _shareable_temp(path)
            staged.append((tmp, path))
            with os.fdopen(handle, "wb") as stream:
                stream.write(content)
        for tmp, path in staged:
            backup = None
            if path.exists():
                backup = path.with_name(f".{path.name}.{uuid.uuid4().hex}.bak")
                try:
                    os.link(path, backup)
                except OSError:  # a filesystem without hard links: keep a copy instead
                    shutil.copy2(path, backup)
            backups.append((path, backup))
            os.replace(tmp, path)
    except BaseException as error:
        for path, backup in reversed(backups):
            try:
                if backup is not None:
                    if path.exists() and os.path.samefile(path, backup):
                        backup.unlink()  # never replaced; rename() of two links to one file is a no-op
                    elif backup.exists():
                        os.replace(backup, path)
                else:
                    path.unlink(missing_ok=True)
            except OSError:
                pass  # best effort: the original error is the one to report
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        for folder in reversed(created_dirs):
            try:
                folder.rmdir()
            except OSError:
                pass
        if isinstance(error, OSError):
            folder = Path(os.path.commonpath([Path(p).absolute().parent for p in files]))
            translated = machine_error(error, folder, sum(len(content) for content in files.values()))
            if translated is not None and translated is not error:
                raise translated from error
        raise
    for _, backup in backups:
        if backup is not None:
            backup.unlink(missing_ok=True)
