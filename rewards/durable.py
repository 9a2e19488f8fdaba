"""Durable file writes: what a user made survives a killed process.

A file is written under a temporary name, flushed and fsynced, then renamed onto
its final name, so readers see the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_save(target: Path, save: Callable[[Path], object]) -> None:
    """Writes ``target`` through ``save(partial_path)``: a temporary name in the same
    folder (keeping the suffix, which is how plotting and video libraries pick the
    format), fsynced, then renamed onto ``target``; an interrupted or failed save
    leaves no partial file behind."""
    target = Path(target)
    partial = target.with_name(f".{target.name}.tmp-{os.getpid()}{target.suffix}")
    try:
        save(partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def atomic_write(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """:func:`atomic_save` through ``write(binary_handle)``."""
    def save(partial: Path) -> None:
        with open(partial, "wb") as handle:
            write(handle)

    atomic_save(target, save)


def fsync_folder(folder: Path) -> None:
    """Makes renames and new files in ``folder`` durable (a no-op where unsupported)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def cut_torn_tail(handle: BinaryIO) -> None:
    """Truncates a file open for reading and writing (``"r+b"``) after its last
    complete line, fsynced: an append killed halfway leaves a partial last line, and
    the next append must start on a fresh one."""
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return
    handle.seek(size - 1)
    if handle.read(1) == b"\n":
        return
    handle.seek(0)
    keep = handle.read().rfind(b"\n") + 1
    handle.flush()
    os.ftruncate(handle.fileno(), keep)
    os.fsync(handle.fileno())


def read_json_header(path: Path, file_format: str, version: int, what: str) -> dict:
    """Reads a JSON file tagged ``{"format": file_format, "version": version, ...}``.

    Raises ``ValueError`` saying which when the file is corrupt or truncated, is not
    ``what``, or has another format version.
    """
    try:
        header = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is corrupt or truncated: {error}") from error
    if not isinstance(header, dict) or header.get("format") != file_format:
        raise ValueError(f"{path} is not {what}")
    if header.get("version") != version:
        raise ValueError(f"{path} has format version {header.get('version')!r}; "
                         f"this vmalign reads version {version}")
    return header
