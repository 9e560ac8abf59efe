"""The export root and the folders under it: where an export may write, and how.

A requested folder is a path under the root (relative, or absolute and spelled under the root).
It is opened one component at a time from the root's directory descriptor with O_NOFOLLOW, so
`..`, a symbolic link anywhere on the way (even one planted after the check) or a file where a
folder should be never lead out of the root. Files are written under a temporary name in the
same folder and renamed over the final name (atomic: a reader sees the old file or the new
one), all through the folder's descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Self

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Reading a file already in a folder: never through a link, and without blocking on a FIFO
# (opening one for reading waits for a writer); only regular files are then read.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_MAX_COMPONENT = 255


class ExportPathError(Exception):
    """An export folder that cannot be used; the message names the path and the problem."""


class BadExportPath(ExportPathError):
    """The requested path is malformed (empty, NUL, the root itself)."""


class OutsideExportRoot(ExportPathError):
    """The requested path leads out of the export root (`..`, a symbolic link, elsewhere)."""


class NotOwned(ExportPathError):
    """The folder holds files this export did not write (or they changed since)."""


class FolderBusy(ExportPathError):
    """Another export is writing the same folder now."""


@dataclass(frozen=True)
class WrittenFile:
    """A file an export wrote: its name in the folder, SHA-256 and size."""

    name: str
    sha256: str
    bytes: int


class ExportRoot:
    """The one folder that every export folder lives under (created when missing)."""

    def __init__(self, root: Path) -> None:
        given = Path(os.path.abspath(root.expanduser()))
        given.mkdir(parents=True, exist_ok=True)
        self.path = given.resolve()
        # Absolute requests may spell the root as configured or as resolved (/tmp vs
        # /private/tmp): both name the same folder.
        self._spellings = (PurePosixPath(self.path), PurePosixPath(given))

    def parts(self, requested: str) -> tuple[str, ...]:
        """The folder names from the root to `requested`; raises BadExportPath or
        OutsideExportRoot, naming the problem."""
        if not requested.strip():
            raise BadExportPath("output_dir is required: a folder under the export root, "
                                "e.g. round-1")
        if "\x00" in requested:
            raise BadExportPath(f"output_dir {requested!r} contains a NUL character")
        path = PurePosixPath(requested)
        if path.is_absolute():
            for root in self._spellings:
                if path.is_relative_to(root):
                    path = path.relative_to(root)
                    break
            else:
                raise OutsideExportRoot(
                    f"output_dir {requested!r} is outside the export root {self.path}; give a "
                    "folder under it (a relative path is taken from the root)")
        parts = tuple(p for p in path.parts if p != ".")
        if ".." in parts:
            raise OutsideExportRoot(f"output_dir {requested!r} contains '..'; give a folder "
                                    f"under the export root {self.path} without '..'")
        if not parts:
            raise BadExportPath(f"output_dir {requested!r} is the export root itself; give a "
                                "folder under it, e.g. round-1")
        for part in parts:
            if len(part.encode()) > _MAX_COMPONENT:
                raise BadExportPath(f"output_dir {requested!r}: the name {part[:40]!r}... is "
                                    f"longer than {_MAX_COMPONENT} bytes")
        return parts

    def open(self, requested: str) -> ExportFolder:
        """The folder `requested` under the root, created as needed, opened without following
        any symbolic link; the caller closes it (a context manager)."""
        parts = self.parts(requested)
        fd = os.open(self.path, _DIR_FLAGS)
        try:
            walked = PurePosixPath(self.path)
            for part in parts:
                walked = walked / part
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as error:
                    # A link gives ELOOP, or ENOTDIR (O_DIRECTORY is checked first).
                    if error.errno == errno.ELOOP or (
                            error.errno == errno.ENOTDIR and stat.S_ISLNK(
                                os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode)):
                        raise OutsideExportRoot(
                            f"output_dir {requested!r}: {walked} is a symbolic link; an export "
                            "never follows links out of the export root") from None
                    if error.errno == errno.ENOTDIR:
                        raise BadExportPath(f"output_dir {requested!r}: {walked} is a file, "
                                            "not a folder") from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return ExportFolder(fd, Path(walked))


class ExportFolder:
    """One export folder, held open by descriptor: every read and write stays inside it."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def lock(self) -> None:
        """Hold the folder for this export (released on close); FolderBusy when another
        export holds it."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(f"{self.path}: another export is writing this folder now; "
                             "retry when it is done") from None

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def read_bytes(self, name: str, limit: int) -> bytes | None:
        """The file's bytes (None when absent); a link or a file over `limit` bytes is
        NotOwned: an export never reads through links or unbounded files."""
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise NotOwned(f"{self.path / name} is a symbolic link") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotOwned(f"{self.path / name} is not a regular file")
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise NotOwned(f"{self.path / name} is larger than {limit} bytes")
        return data

    def sha256(self, name: str) -> str | None:
        """Hex SHA-256 of a regular file in the folder; None when absent or not a file."""
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=self.fd)
        except (FileNotFoundError, OSError):
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        digest = hashlib.sha256()
        with os.fdopen(fd, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def writer(self, name: str) -> AtomicFile:
        """A new file written under a temporary name; `commit` renames it to `name`."""
        return AtomicFile(self, name)


class AtomicFile:
    """Bytes written to a temporary file in the folder, hashed as they go; `finish` flushes
    them, `commit` moves the file over `name`. Discarded uncommitted, it leaves nothing."""

    def __init__(self, folder: ExportFolder, name: str) -> None:
        self.folder = folder
        self.name = name
        self._tmp = f".{name}.{secrets.token_hex(6)}.partial"
        fd = os.open(self._tmp, _NEW_FILE_FLAGS, 0o644, dir_fd=folder.fd)
        self._file = os.fdopen(fd, "wb")
        self._digest = hashlib.sha256()
        self._bytes = 0
        self._done = False

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._digest.update(data)
        self._bytes += len(data)

    def finish(self) -> WrittenFile:
        """Flush the bytes to disk (still under the temporary name); what `commit` will place."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        return WrittenFile(self.name, self._digest.hexdigest(), self._bytes)

    def commit(self) -> WrittenFile:
        """Move the finished file over `name` (atomic within the folder)."""
        written = self.finish()
        if not self._done:
            os.replace(self._tmp, self.name, src_dir_fd=self.folder.fd,
                       dst_dir_fd=self.folder.fd)
            self._done = True
        return written

    def discard(self) -> None:
        if not self._done:
            self._file.close()
            self.folder.remove(self._tmp)
            self._done = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.discard()
