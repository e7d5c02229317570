"""The one way finetext writes a file or a folder: staged, fsynced, renamed into place.

Whatever is written (an artifact, a checkpoint, an export, a tokenization-cache entry, predict's output
file, a chart) is first written in full under a hidden temporary name on the same file system, flushed to
disk, and only then renamed to its real name. A process killed at any moment therefore leaves the old thing
or the new thing, never half of one; a power cut after the rename cannot leave a published but empty file.

- A file: ``staged_file(path)`` yields a temporary path beside ``path`` for any writer (pandas, matplotlib,
  safetensors); ``write_bytes``/``write_text``/``write_json`` are the common cases.
- A folder: ``staged_folder(final)`` yields a hidden staging folder beside ``final`` and publishes it with
  ``publish_folder`` (or a caller's own publisher, as artifacts do to keep the user's files). Publishing a
  folder over an existing one swaps the two in one atomic step (Linux renameat2 with RENAME_EXCHANGE); where
  the swap is unavailable the old folder is renamed aside and the new one renamed in: a kill between those
  two renames leaves ``final`` missing, never mixed, and ``remove_stale_staging`` puts the old one back.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FILE_MODE = 0o644  # mkstemp and mkdtemp create private files and folders; what finetext writes is shared
FOLDER_MODE = 0o755
STAGING = ".staging-"  # in the names of staging folders: .<final>.staging-XXXX beside, .staging-XXXX inside
ASIDE = ".old-"  # .<final>.old-XXXX/<final>: the previous folder while the fallback replaces it

Publisher = Callable[[Path, Path], None]


# ---------------------------------------------------------------------------------------------------------
# Files


@contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers that infer the format from it work) for the
    caller to write in full; then it is fsynced, made shareable and renamed over ``path``. On any failure the
    temporary file is removed and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    with staged_file(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------------------
# Folders


@contextmanager
def staged_folder(final: Path, publish: Publisher | None = None,
                  inside_when_parent_readonly: bool = False) -> Iterator[Path]:
    """A fresh hidden staging folder for the caller to fill; then it is sealed and ``publish(staging, final)``
    (default: a rename, or a swap with an existing final) puts it in place. The staging folder is removed in
    every case, so a failure leaves ``final`` as it was.

    The staging folder is beside ``final`` (same file system: a rename, not a copy). With
    ``inside_when_parent_readonly`` and an existing ``final`` whose parent refuses it, it is made inside
    ``final`` instead; only a publisher that moves files in one by one can handle that (artifacts' does)."""
    staging = make_staging_folder(final, inside_when_parent_readonly)
    try:
        yield staging
        seal(staging)
        (publish or _put_in_place)(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def make_staging_folder(final: Path, inside_when_parent_readonly: bool = False) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        return Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}{STAGING}"))
    except OSError:
        if not (inside_when_parent_readonly and final.is_dir()):
            raise
        return Path(tempfile.mkdtemp(dir=final, prefix=STAGING))


def remove_stale_staging(final: Path) -> None:
    """Clear what a process killed while writing ``final`` left: staging folders beside (or inside) it, and
    the previous folder set aside by the fallback, which is put back if the kill fell before the new one
    took its place. Only for a caller that knows no other process is writing ``final`` now."""
    final = final.resolve()
    for aside in final.parent.glob(f".{final.name}{ASIDE}*"):
        if (aside / final.name).is_dir() and not final.exists():
            os.replace(aside / final.name, final)
        shutil.rmtree(aside, ignore_errors=True)
    leftovers = list(final.parent.glob(f".{final.name}{STAGING}*"))
    if final.is_dir():
        leftovers += final.glob(f"{STAGING}*")
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)


def publish_folder(staging: Path, final: Path) -> None:
    """Seal a staging folder that the caller made and filled itself (a sibling of final, e.g. one that every
    process of a distributed run writes into) and put it in place. Nothing is left at ``staging``."""
    seal(staging)
    _put_in_place(staging, final)


def seal(staging: Path) -> None:
    """What every folder gets before it is published: shareable permissions, everything flushed to disk."""
    make_shareable(staging)
    fsync_tree(staging)


def _put_in_place(staging: Path, final: Path) -> None:
    """A rename when final is absent, an atomic swap with it otherwise (the previous final is then deleted)."""
    keep_mode(staging, final)
    if not final.exists():
        os.replace(staging, final)
    elif exchange_folders(staging, final):
        shutil.rmtree(staging, ignore_errors=True)  # now the previous final
    else:
        _replace_via_aside(staging, final)
    fsync_folder(final.parent)


def _replace_via_aside(staging: Path, final: Path) -> None:
    """Without the swap: rename final aside, rename staging in (put final back if that fails), delete the old."""
    aside = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}{ASIDE}"))
    os.replace(final, aside / final.name)
    try:
        os.replace(staging, final)
    except OSError:
        os.replace(aside / final.name, final)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def keep_mode(staging: Path, final: Path) -> None:
    """Give the staging folder (0700 from mkdtemp) final's permissions, or 0755 for a new folder."""
    os.chmod(staging, stat.S_IMODE(final.stat().st_mode) if final.is_dir() else FOLDER_MODE)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_folders(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 with RENAME_EXCHANGE); False where that is unavailable."""
    libc = _libc()
    renameat2 = getattr(libc, "renameat2", None) if libc is not None else None
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.EOPNOTSUPP, errno.EPERM, errno.EBUSY):
        return False
    raise OSError(error, os.strerror(error), str(b))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def make_shareable(folder: Path) -> None:
    """Some writers (mkstemp, peft) create 0600 files."""
    for path in folder.rglob("*"):
        if path.is_symlink():
            continue
        if path.is_file():
            os.chmod(path, FILE_MODE)
        elif path.is_dir():
            os.chmod(path, FOLDER_MODE)


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder entry, so a power cut after publishing cannot leave a published but empty
    or missing file."""
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            _fsync_file(path)
        elif path.is_dir() and not path.is_symlink():
            fsync_folder(path)
    fsync_folder(folder)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_folder(folder: Path) -> None:
    """Make a rename inside folder durable (best effort: not every OS can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
