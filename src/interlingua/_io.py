"""Atomic, pickle-free file writing.

Everything interlingua writes (JSON, safetensors, caches) goes through these helpers: the
data is written to a temporary file in the target directory and renamed into place, so a
killed process or a full disk never leaves a truncated file behind. Loading only ever uses
JSON and safetensors.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import struct
import tempfile
import warnings
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from interlingua.errors import InterlinguaError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer is the user's job
    fcntl = None


_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _errno(exc: Exception) -> int | None:
    """The errno of a failed write: an OSError's, or the one in a SafetensorError's text ("... (os error 28)")."""
    if isinstance(exc, OSError):
        return exc.errno
    m = _OS_ERROR.search(str(exc))
    return int(m.group(1)) if m else None


def _shown(path: str | Path) -> Path:
    """``path`` as the user knows it: a directory being written under a temporary name shows as its final name."""
    parts = [(parsed[0] if (parsed := parse_leftover(p)) and parsed[1] == "tmp" else p) for p in Path(path).parts]
    return Path(*parts) if parts else Path(path)


def _write_error_message(err: int, target: str | Path, exc: Exception) -> str | None:
    """What to tell the user when writing ``target`` failed with ``err``, or None when it is no filesystem problem."""
    target, where = _shown(target), getattr(exc, "filename", None)
    detail = f"{_shown(where)}: {os.strerror(err)}" if where and _shown(where) != target else os.strerror(err)
    if err in (errno.ENOSPC, errno.EDQUOT):
        return (f"the disk is full while writing {target}. Free some space (or point the output elsewhere) and run "
                "the same command again: finished parts are kept and the job resumes where it stopped.")
    if err in (errno.EACCES, errno.EROFS, errno.EPERM):
        return (f"cannot write {target} ({detail}). Choose a directory you can write to, or make this one "
                "writable, and run the same command again.")
    if err in (errno.ENOTDIR, errno.EEXIST):
        return (f"cannot write {target} ({detail}): a file stands where a directory is needed. Give a path "
                "whose directories are directories (or move that file).")
    return None


@contextlib.contextmanager
def disk_errors(target: str | Path) -> Iterator[None]:
    """Turn a failed write of ``target`` into one clear message that names it and says what to do.

    Covers a full disk, no permission, a read-only filesystem and a file where a directory belongs,
    whether the error is an ``OSError`` or safetensors' ``SafetensorError`` (which carries the errno
    only in its text). Anything else is raised unchanged.
    """
    try:
        yield
    except (OSError, SafetensorError) as exc:
        err = _errno(exc)
        message = _write_error_message(err, target, exc) if err is not None else None
        if message is None:
            raise
        raise InterlinguaError(message) from exc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path for ``target``; on success it is renamed onto ``target``.

    The path lies inside a private directory beside ``target``, named like every leftover
    (``.NAME.xxxxxxxx.tmp``): writers that themselves write through a temporary file beside the
    path they are given (safetensors ≥ 0.5 uses ``.tmpXXXXXX``) then leave nothing a kill could
    strand under a name reruns do not recognise.
    """
    target = Path(target)
    with disk_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        private = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp_path = private / target.name
    try:
        with disk_errors(target):
            yield tmp_path
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp_path, 0o666 & ~_umask())
            os.replace(tmp_path, target)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def write_text(target: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8), atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_json(path: str | Path, remedy: str) -> Any:
    """``path`` parsed as JSON, or a clear error naming it and saying what to do (``remedy``).

    For files interlingua wrote and reads back (manifests, concept and checkpoint records): a
    damaged one (edited by hand, cut short by a copy) is an :class:`InterlinguaError`, not a traceback.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InterlinguaError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
                               f"{remedy}") from None
    except UnicodeDecodeError:
        raise InterlinguaError(f"{path} is not UTF-8 text, so not a JSON file interlingua wrote. {remedy}") from None


@contextlib.contextmanager
def open_safetensors(path: str | Path, remedy: str) -> Iterator[Any]:
    """``safe_open`` on ``path`` (CPU, torch), with a damaged file a clear error naming it and ``remedy``.

    A file cut short (an interrupted copy, a full disk elsewhere) or that is no safetensors at
    all makes safetensors raise its own error; that becomes an :class:`InterlinguaError`.
    Reading the tensors happens inside the block, so a truncated body is caught as well.
    """
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            yield fh
    except SafetensorError as exc:
        raise InterlinguaError(f"{path} is damaged or not a safetensors file ({exc}). {remedy}") from None


def check_finite(tensors: dict[str, torch.Tensor], path: str | Path, remedy: str) -> None:
    """Refuse tensors read from ``path`` that hold NaN or infinite values (every result computed from them would)."""
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise InterlinguaError(f"{path}: {', '.join(bad)} hold{'s' if len(bad) == 1 else ''} NaN or infinite "
                               f"values. {remedy}")


def write_safetensors(
    target: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write tensors as safetensors, atomically; the same tensors and metadata give the same bytes."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        _sort_metadata(tmp)


def _sort_metadata(path: Path) -> None:
    """Put the metadata keys in the safetensors header of ``path`` in sorted order, in place.

    safetensors keeps the metadata in a Rust ``HashMap``, whose order changes from process to
    process, so two identical saves differ in bytes (and in checksums). Only the order changes, so
    the header keeps its length and the tensor data stays where it is. Should the re-encoded
    header not fit (it always does: both encoders escape the same characters), the file is left
    as written: valid, merely not byte-reproducible.
    """
    with open(path, "r+b") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
        metadata = header.get("__metadata__")
        if not metadata or len(metadata) < 2:
            return
        header["__metadata__"] = dict(sorted(metadata.items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) <= size:
            fh.seek(8)
            fh.write(text.ljust(size, b" "))  # safetensors pads its header with spaces too


def save_figure(fig: Any, target: str | Path, **savefig: Any) -> Path:
    """``fig.savefig`` to ``target`` atomically: a killed run never leaves half an image under its name."""
    target = Path(target)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", **savefig)
    return target


# --------------------------------------------------------------------------------------------
# One writer per output directory
#
# Whatever writes a directory holds its lock for as long as it writes: an advisory ``flock`` on a
# lock file, which the kernel releases when the process ends however it ends, so a killed run
# never blocks the next. A directory that persists and fills up over a job (an extraction, SAE
# training) has its lock inside (``DIR/.interlingua.lock``); one that is replaced as a whole (a
# saved concept, a translation, an SAE, a checkpoint) has it beside (``.DIR.lock``), since the
# directory itself is renamed away. The lock file is removed when the lock is released.

LOCK_FILE = ".interlingua.lock"
_HELD: dict[str, int] = {}  # lock files this process holds -> their descriptors (re-entered, not re-locked)


def lock_path(directory: str | Path, *, beside: bool = False) -> Path:
    """The lock file of ``directory``: ``DIR/.interlingua.lock``, or ``.DIR.lock`` next to it with ``beside``."""
    directory = Path(os.path.abspath(directory))
    return directory.with_name(f".{directory.name}.lock") if beside else directory / LOCK_FILE


def _holder(fd: int) -> str:
    """The process id written in a lock file, as text ("unknown" while its holder has not written it yet)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def _is_current(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (its last holder may have removed it before we locked it)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _acquire(path: Path, directory: Path, wait: bool) -> int:
    """Lock ``path`` (created if missing) and write this process's id into it; refuse if another process holds it."""
    with disk_errors(directory):
        path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        with disk_errors(directory):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise InterlinguaError(
                f"{directory} is being written by another interlingua process (pid {pid}); wait for it or "
                "choose another --out."
            ) from None
        except OSError as exc:  # a filesystem without locks (some network mounts): write unguarded, and say so
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                warnings.warn(f"{directory}: this filesystem does not support file locks ({os.strerror(exc.errno)}), "
                              "so a second interlingua process writing here at the same time would not be "
                              "stopped; run one at a time.", stacklevel=4)
                return fd
            os.close(fd)
            raise
        if _is_current(fd, path):
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@contextlib.contextmanager
def writing(directory: str | Path, *, beside: bool = False, wait: bool = False) -> Iterator[None]:
    """Hold ``directory``'s lock while the block writes it: a second process gets a clear error, not a mix.

    ``beside`` puts the lock next to the directory (for one that is replaced as a whole), else
    inside it (the directory is created). Without ``wait`` a lock held by another process is an
    :class:`InterlinguaError` naming that process; with it, this waits for the lock. Re-entering
    a lock this process holds is free. Without ``fcntl`` (Windows) nothing is locked.
    """
    directory = Path(os.path.abspath(directory))
    path = lock_path(directory, beside=beside)
    if fcntl is None or str(path) in _HELD:
        yield
        return
    fd = _acquire(path, directory, wait)
    _HELD[str(path)] = fd
    try:
        yield
    finally:
        del _HELD[str(path)]
        try:
            path.unlink(missing_ok=True)  # still holding it: whoever opened it meanwhile retries on the new file
        except OSError:
            pass
        os.close(fd)


def _held_elsewhere(directory: Path) -> bool:
    """Whether another process holds ``directory``'s beside-lock right now (it is replacing the directory)."""
    if fcntl is None:
        return False
    path = lock_path(directory, beside=True)
    if str(path) in _HELD:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# Replacing a whole directory
#
# A directory cannot be swapped in one rename when the old one exists, so the swap takes three
# renames, and every name a kill can leave behind says what it holds:
#
#   .NAME.xxxxxxxx.tmp   being written: possibly partial, never used, removed as a leftover
#   .NAME.new.xxxxxxxx   the complete new directory, about to be renamed to NAME
#   .NAME.old.xxxxxxxx   the complete previous NAME, moved aside for the new one
#   .NAME.trash.xxxxxxxx being deleted: possibly partial, never used, removed as a leftover
#
# NAME is missing only between "NAME -> .old" and ".new -> NAME"; then a complete .new (the
# save that was cut short) or else a complete .old exists, and :func:`recover_dir` puts it back.

_LEFTOVER = re.compile(
    r"^\.(?P<name>.+)\.(?:[a-z0-9_]{8}\.(?P<tmp>tmp)|(?P<kind>new|old|trash)\.[0-9a-f]{8}|(?P<lock>lock))$")


def parse_leftover(entry: str) -> tuple[str, str] | None:
    """``(final name, kind)`` if ``entry`` is a temporary or set-aside copy interlingua writes, else None.

    ``kind`` is ``tmp``, ``new``, ``old``, ``trash`` or ``lock``. Matches the names :func:`atomic_path`,
    :func:`atomic_dir` and :func:`writing` write (``.NAME.xxxxxxxx.tmp``, ``.NAME.new|old|trash.xxxxxxxx``,
    ``.NAME.lock``) and only those: the random part never holds a dot, so
    ``.resid_post.30.ab12cd34.tmp`` belongs to ``resid_post.30``, not to ``resid_post.3``.
    """
    m = _LEFTOVER.match(entry)
    if m is None:
        return None
    return m.group("name"), m.group("tmp") or m.group("kind") or m.group("lock")


def leftover_of(entry: str) -> str | None:
    """The final name whose temporary or set-aside copy ``entry`` is, or None if it is no such copy."""
    parsed = parse_leftover(entry)
    return parsed[0] if parsed else None


def _aside(target: Path, kind: str) -> Path:
    """A fresh sibling name ``.NAME.<kind>.xxxxxxxx`` for ``target``."""
    return target.with_name(f".{target.name}.{kind}.{secrets.token_hex(4)}")


def _complete_copies(target: Path) -> list[Path]:
    """The complete copies of a missing ``target``: the new ones first, then the old; newest first."""
    if not target.parent.is_dir():
        return []
    found: dict[str, list[Path]] = {"new": [], "old": []}
    for entry in target.parent.iterdir():
        parsed = parse_leftover(entry.name)
        if parsed is not None and parsed[0] == target.name and parsed[1] in found and entry.is_dir():
            found[parsed[1]].append(entry)
    newest = lambda paths: sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)  # noqa: E731
    return newest(found["new"]) + newest(found["old"])


def recover_dir(target: str | Path) -> Path:
    """The directory to read for ``target``, after putting back a copy a kill left aside.

    If a kill interrupted :func:`atomic_dir` while ``target`` was missing, the complete copy it
    left (the new one if it got that far, else the previous one) is renamed back to ``target``.
    Where that rename is not allowed (a read-only place) the copy itself is returned. Otherwise
    ``target`` is returned, existing or not, so the caller reports a missing one as before.
    """
    target = Path(target)
    if target.exists():
        return target
    if _held_elsewhere(target):  # another process is swapping it in right now: read, do not move
        copies = _complete_copies(target)
        return target if target.exists() or not copies else copies[0]
    for copy in _complete_copies(target):
        try:
            os.rename(copy, target)
            return target
        except FileNotFoundError:  # another process put it back first
            if target.exists():
                return target
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                return copy
            if target.exists():
                return target
            raise
    return target


def _delete(path: Path, owner: Path) -> None:
    """Rename ``path`` to ``.OWNER.trash.*``, then delete it (a kill half way leaves a leftover, not a torn one)."""
    trash = _aside(owner, "trash")
    with disk_errors(owner):
        os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def discard_dir(target: str | Path) -> None:
    """Delete the directory ``target`` (if there is one) so that a kill never leaves it half deleted."""
    target = Path(target)
    if target.exists():
        _delete(target, target)


def remove_leftovers(directory: str | Path, owns: Callable[[str], bool]) -> list[str]:
    """Delete the temporary and set-aside copies in ``directory`` of the final names ``owns`` accepts.

    Only names interlingua itself writes for those files (see :func:`leftover_of`) are touched,
    a set-aside directory copy only once its final name exists again (run :func:`recover_dir`
    first), and a lock file only when no process holds it. Call it while holding ``directory``'s
    own lock (:func:`writing`), so that no other process is writing those files. Returns the
    names removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in sorted(directory.iterdir()):
        parsed = parse_leftover(entry.name)
        if parsed is None or not owns(parsed[0]):
            continue
        name, kind = parsed
        if kind in ("new", "old") and not (directory / name).exists():
            continue  # the only complete copy of a missing directory
        if kind == "lock" and (str(lock_path(directory / name, beside=True)) in _HELD
                               or _held_elsewhere(directory / name)):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        except OSError:  # cleaning up is a courtesy: a directory we may not change keeps them
            continue
        removed.append(entry.name)
    return removed


def check_replaceable(directory: str | Path, own: Collection[str], what: str, *, overwrite: bool) -> None:
    """Refuse to save ``what`` over ``directory`` unless that loses nothing the user has not asked to lose.

    A directory saved as one unit (:func:`atomic_dir`) replaces what was there, so it may only be
    saved where there is nothing, an empty directory, or a previous ``what`` (whose entries are
    the names in ``own``, plus interlingua's own leftovers of them), and over a previous one only
    with ``overwrite``. Anything else there is the user's: refused even with ``overwrite``.
    Call it before the work that produces ``what``, so that a refusal costs nothing.
    """
    directory = Path(directory)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise InterlinguaError(f"{directory} is a file; {what} is saved as a directory. Give a directory path.")
    entries = sorted(e.name for e in directory.iterdir() if leftover_of(e.name) not in own)
    foreign = [n for n in entries if n not in own]
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise InterlinguaError(
            f"{directory} holds files that are not {what} ({', '.join(foreign[:5])}{more}); saving there would "
            "delete them. Choose a new or empty directory."
        )
    if entries and not overwrite:
        raise InterlinguaError(
            f"{directory} already holds {what}; pass --overwrite to replace it, or choose another directory."
        )


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``target``; on success it replaces ``target``.

    The new directory is written under a temporary name, renamed to ``.NAME.new.*`` once
    complete, the old ``target`` is renamed aside to ``.NAME.old.*``, the new one renamed into
    place, and only then is the old one deleted. A kill at any instant leaves either the old or
    the new directory complete, under ``target`` or under a name :func:`recover_dir` restores,
    and the next save of ``target`` removes what it left. The whole save holds ``target``'s lock (:func:`writing`, beside it): a second process saving
    to the same place at once is refused with a clear error.
    """
    target = Path(os.path.abspath(target))
    if target.exists() and not target.is_dir():
        raise InterlinguaError(f"{target} is a file; it is saved as a directory. Give a directory path.")
    if Path.cwd() == target or target in Path.cwd().parents:
        raise InterlinguaError(f"{target} is the working directory (or holds it); save into a directory of its own.")
    with writing(target, beside=True), _replacing(target) as tmp:
        yield tmp


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """The steps of :func:`atomic_dir`, run while holding the lock."""
    with disk_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with disk_errors(target):
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())
            recover_dir(target)  # a copy an earlier kill left aside is the "old" one now
            new = _aside(target, "new")
            os.rename(tmp, new)
            old = None
            if target.exists():
                old = _aside(target, "old")
                os.rename(target, old)
            os.rename(new, target)
        if old is not None:
            _delete(old, target)
        remove_leftovers(target.parent, {target.name}.__contains__)  # what earlier killed saves of it left
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
