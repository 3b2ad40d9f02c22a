"""The simulated file system of one lab host: drive C: only, case-insensitive Windows paths.

Metadata (paths, sizes, hashes, timestamps, the secret ACL flag) lives in the host's state;
contents live in a `BlobStore` (one blob per file, kept beside the state file once saved), so
chunks of a pushed installer land at their offsets; a small file that is not secret (up to
`INLINE_BYTES`: the simulated programs, logs, config) is kept in its metadata instead, so saving
a host does not write a file for each. Free space is accounted: writing more than
is free raises an op error `DiskFull`, removing a file gives its space back. `changes` counts
the calls of this object that changed something (the host's generation is derived from it).

A file written empty and then only appended to (a push: `file_begin`'s empty file, the chunks
in order) keeps a running sha256 of its content in memory, fed by every append, so `file_end`'s
check hashes the bytes as they were written instead of reading the file back; any other change
of the file (a write elsewhere, a gap, a replace) drops it, and the hash is computed from the
content again when asked for.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ntpath
import re
from typing import Any

from pushinstall.lab.blobs import BlobStore
from pushinstall.lab.common import fail, now_iso

INLINE_BYTES = 1024
_ILLEGAL = re.compile(r'[\x00-\x1f"<>|]')
_DRIVE_PATH = re.compile(r"^[A-Za-z]:\\")
CWD = "C:\\Users\\Administrator\\Documents"


@functools.lru_cache(maxsize=4096)
def normalize(path: str) -> str:
    """The absolute, normalized form of a local Windows path, as .NET's GetFullPath gives it.

    Fails the op with .NET's messages for the shapes .NET rejects."""
    if _ILLEGAL.search(path):
        fail("Exception", "Illegal characters in path.")
    path = path.replace("/", "\\")
    if path.startswith("\\\\"):
        fail("InvalidArgument", f"not a local path: {path}")
    if not _DRIVE_PATH.match(path):
        if path.startswith("\\"):
            path = "C:" + path
        elif re.match(r"^[A-Za-z]:", path):
            path = path[:2] + "\\" + path[2:]
        else:
            path = CWD + "\\" + path
    full = ntpath.normpath(path)
    if ":" in full[2:] or "*" in full or "?" in full:
        fail("Exception", "The given path's format is not supported.")
    return full[0].upper() + full[1:]


@functools.lru_cache(maxsize=4096)
def parent_of(path: str) -> str | None:
    """The parent directory of a normalized path; None for a drive root."""
    parent = ntpath.dirname(path)
    return None if parent == path else parent


class FileSystem:
    """Directories and files of drive C:, contents in `blobs`."""

    def __init__(self, data: dict[str, Any], blobs: BlobStore) -> None:
        # data: {"dirs": {lower: {"path", "modified"}}, "files": {lower: entry},
        #        "free_bytes": int, "total_bytes": int, "next_blob": int}
        self.data = data
        self.blobs = blobs
        self.changes = 0
        self._running: dict[str, Any] = {}   # lowercase path -> sha256 of all its content

    @property
    def dirs(self) -> dict[str, dict[str, Any]]:
        """Directories by lowercase path."""
        dirs: dict[str, dict[str, Any]] = self.data["dirs"]
        return dirs

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """Files by lowercase path: `{"path", "blob", "size", "sha256", "modified", "secret"}`
        and `inline` (base64 content) where `blob` is None."""
        files: dict[str, dict[str, Any]] = self.data["files"]
        return files

    # ------------------------------------------------------------ queries

    def is_dir(self, path: str) -> bool:
        """True for an existing directory (a drive root counts)."""
        full = normalize(path)
        return full.lower() in self.dirs or (len(full) == 3 and full[0] in "Cc")

    def is_file(self, path: str) -> bool:
        """True for an existing file."""
        return normalize(path).lower() in self.files

    def entry(self, path: str) -> dict[str, Any] | None:
        """The file's metadata, or None."""
        return self.files.get(normalize(path).lower())

    def read(self, path: str) -> bytes:
        """A file's content; NotFound when missing."""
        entry = self.entry(path)
        if entry is None:
            fail("NotFound", f"Could not find file '{normalize(path)}'.")
        if entry["blob"] is None:
            return base64.b64decode(entry.get("inline", ""))
        return self.blobs.get(entry["blob"])

    def size(self, path: str) -> int:
        """A file's size; NotFound when missing."""
        entry = self.entry(path)
        if entry is None:
            fail("NotFound", f"Could not find file '{normalize(path)}'.")
        return int(entry["size"])

    def sha256(self, path: str) -> str:
        """A file's sha256 (cached in its metadata)."""
        entry = self.entry(path)
        if entry is None:
            fail("NotFound", f"Could not find file '{normalize(path)}'.")
        if entry.get("sha256") is None:
            running = self._running.get(normalize(path).lower())
            entry["sha256"] = (running or hashlib.sha256(self.read(path))).hexdigest()
        sha: str = entry["sha256"]
        return sha

    # ------------------------------------------------------------ changes

    def _require_drive(self, full: str) -> None:
        if full[0] not in "Cc":
            fail("NotFound", f"Could not find a part of the path '{full}'.")

    def make_dirs(self, path: str) -> bool:
        """Create a directory and its parents; True when it did not exist."""
        full = normalize(path)
        self._require_drive(full)
        if full.lower() in self.files:
            fail("InvalidArgument", f"a file is in the way of the directory {full}")
        created = False
        current: str | None = full
        missing: list[str] = []
        while current is not None and not self.is_dir(current):
            if current.lower() in self.files:
                fail("Exception", f"Cannot create '{current}' because a file "
                                 "with that name already exists.")
            missing.append(current)
            current = parent_of(current)
        for directory in reversed(missing):
            self.dirs[directory.lower()] = {"path": directory, "modified": now_iso()}
            created = True
        self.changes += created
        return created

    def _need_parent(self, full: str) -> None:
        parent = parent_of(full)
        if parent is not None and not self.is_dir(parent):
            fail("NotFound", f"Could not find a part of the path '{full}'.")

    def _charge(self, delta: int) -> None:
        if delta > self.data["free_bytes"]:
            fail("DiskFull", "There is not enough space on the disk.")
        self.data["free_bytes"] -= delta
        self.changes += delta != 0

    def write(self, path: str, content: bytes, secret: bool = False) -> dict[str, Any]:
        """Create or replace a file (its parent must exist); returns its metadata."""
        full = normalize(path)
        self._require_drive(full)
        if self.is_dir(full):
            fail("AccessDenied", f"Access to the path '{full}' is denied.")
        self._need_parent(full)
        old = self.files.get(full.lower())
        self._charge(len(content) - (old["size"] if old else 0))
        if old is not None and old["blob"] is not None:
            self.blobs.drop(old["blob"])
        inline = len(content) <= INLINE_BYTES and not secret
        digest = hashlib.sha256(content)
        if content:
            self._running.pop(full.lower(), None)
        else:                          # where a push's chunks are appended (file_begin)
            self._running[full.lower()] = digest
        entry = {"path": old["path"] if old else full,
                 "blob": None if inline else self._new_blob(content), "size": len(content),
                 "sha256": digest.hexdigest(), "modified": now_iso(), "secret": secret}
        if inline:
            entry["inline"] = base64.b64encode(content).decode("ascii")
        self.files[full.lower()] = entry
        self.changes += 1
        return entry

    def write_at(self, path: str, offset: int, data: bytes | memoryview) -> int:
        """Write `data` at `offset` of an existing file; returns the file's new size."""
        entry = self.entry(path)
        if entry is None:
            fail("NotFound", f"Could not find file '{normalize(path)}'.")
        new_size = max(entry["size"], offset + len(data))
        self._charge(new_size - entry["size"])
        if entry["blob"] is None:      # grows by chunks: a file of its own from now on
            entry["blob"] = self._new_blob(base64.b64decode(entry.pop("inline", "")))
        self.blobs.write_at(entry["blob"], offset, data, new_size)
        key = normalize(path).lower()
        running = self._running.pop(key, None)
        if running is not None and offset == entry["size"]:     # an append: still all of it
            running.update(data)
            self._running[key] = running
        entry.update(size=new_size, sha256=None, modified=now_iso())
        self.changes += 1
        return new_size

    def remove(self, path: str) -> bool:
        """Delete a file; True when it existed."""
        entry = self.files.pop(normalize(path).lower(), None)
        self._running.pop(normalize(path).lower(), None)
        if entry is None:
            return False
        if entry["blob"] is not None:
            self.blobs.drop(entry["blob"])
        self.data["free_bytes"] += entry["size"]
        self.changes += 1
        return True

    def move(self, source: str, destination: str) -> None:
        """Move a file over `destination` (replacing it)."""
        entry = self.files.pop(normalize(source).lower())
        running = self._running.pop(normalize(source).lower(), None)
        full = normalize(destination)
        old = self.files.get(full.lower())
        if old is not None:
            self.remove(full)
        entry["path"] = full  # File.Move keeps the last write time
        self.files[full.lower()] = entry
        if running is not None:
            self._running[full.lower()] = running
        self.changes += 1

    def _new_blob(self, content: bytes) -> str:
        serial = int(self.data.get("next_blob", 0))
        self.data["next_blob"] = serial + 1
        name = f"b{serial:06d}"
        self.blobs.put(name, content)
        return name

    def reserve(self, size: int) -> None:
        """Take `size` bytes of free space (installed programs' footprint); negative returns."""
        self._charge(size)
