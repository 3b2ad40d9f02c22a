"""`BlobStore`: the contents of one lab host's files, in memory until the host is saved.

A simulated install writes a dozen small files (downloads, logs, config, the passphrase file);
writing each to disk as it happens made the simulator, not the engine, the cost of a fleet run.
New and changed contents stay in memory; when `LabHost` saves its state, `flush_new` writes them
into the host's blob folder before the state that names them, and `flush_dropped` deletes the
blobs of removed files after it. Contents already on disk are read once and kept when small.
"""

from __future__ import annotations

from pathlib import Path

KEEP_BYTES = 256 * 1024   # contents read from disk up to this size stay cached


class BlobStore:
    """Named byte strings of one host (the file system picks the names)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pending: dict[str, bytearray] = {}
        self._cache: dict[str, bytes] = {}
        self._dropped: set[str] = set()

    def put(self, name: str, content: bytes) -> None:
        """Store `content` under `name`."""
        self._pending[name] = bytearray(content)
        self._dropped.discard(name)

    def get(self, name: str) -> bytes:
        """The content of blob `name`."""
        if name in self._pending:
            return bytes(self._pending[name])
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        content = (self.directory / name).read_bytes()
        if len(content) <= KEEP_BYTES:
            self._cache[name] = content
        return content

    def write_at(self, name: str, offset: int, data: bytes | memoryview, size: int) -> None:
        """Write `data` at `offset` of blob `name` (now `size` bytes long), zero-filling a gap."""
        buffer = self._pending.get(name)
        if buffer is None:
            buffer = self._pending[name] = bytearray(self.get(name))
            self._cache.pop(name, None)
        if len(buffer) < offset:
            buffer.extend(b"\0" * (offset - len(buffer)))
        buffer[offset:offset + len(data)] = data
        del buffer[size:]

    def drop(self, name: str) -> None:
        """Forget blob `name`; its file goes at the next flush."""
        self._pending.pop(name, None)
        self._cache.pop(name, None)
        self._dropped.add(name)

    def flush_new(self) -> None:
        """Write new and changed blobs (before the state that names them is saved)."""
        if not self._pending:
            return
        self.directory.mkdir(exist_ok=True)   # beside the state file, whose folder exists
        for name, buffer in self._pending.items():
            (self.directory / name).write_bytes(buffer)
            if len(buffer) <= KEEP_BYTES:
                self._cache[name] = bytes(buffer)
        self._pending.clear()

    def flush_dropped(self) -> None:
        """Delete the files of dropped blobs (after the state no longer names them)."""
        for name in self._dropped:
            (self.directory / name).unlink(missing_ok=True)
        self._dropped.clear()
