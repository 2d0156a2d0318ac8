"""Content-addressed on-disk cache of LLM profiles: key = sha256(model, template id, S, M) -> profile.

Why append-only JSONL shards (and not sqlite):
- every process writes its own new shard file (``shard-<time>-<pid>.jsonl``), so concurrent runs never
  interleave bytes and no lock file is needed — also on network/shared filesystems where sqlite's
  locking is unreliable;
- each finished profile is one ``write`` of one line followed by ``flush`` + ``fsync`` before the run
  moves on, so an interrupted run (Ctrl-C, kill -9, power loss) loses at most the line being written;
- the reader skips a line that is torn (no trailing newline, bad JSON, or checksum mismatch) instead of
  failing, so a crash can never leave a cache that breaks the next run;
- the files are plain text: inspectable with ``grep``, mergeable across machines by copying shards.
A rerun therefore requests only prompts whose key is absent: re-runs cost nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import IO


def cache_key(model: str, template_id: str, system: str, prompt: str) -> str:
    """The identity of one answer: the same model, template set and messages give the same profile."""
    payload = json.dumps([model, template_id, system, prompt], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def _check(key: str, profile: str) -> str:
    return hashlib.sha256(f"{key}\x1f{profile}".encode()).hexdigest()[:16]


class ProfileCache:
    """Thread-safe: worker threads of the LLM client call ``put`` as each answer arrives."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.torn_lines = 0
        self._entries: dict[str, str] = {}
        self._lock = threading.Lock()
        self._shard: IO[bytes] | None = None
        self._load()

    def _load(self) -> None:
        for shard in sorted(self.directory.glob("shard-*.jsonl")):
            with shard.open("rb") as handle:
                for raw in handle:
                    record = self._parse(raw)
                    if record is None:
                        self.torn_lines += 1
                        continue
                    self._entries[record["key"]] = record["profile"]

    @staticmethod
    def _parse(raw: bytes) -> dict | None:
        if not raw.endswith(b"\n"):
            return None  # the last line of a shard whose writer died mid-write
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("profile"), str):
            return None
        if record.get("check") != _check(str(record.get("key")), record["profile"]):
            return None
        return record

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        return self._entries.get(key)

    def put(self, key: str, profile: str, **meta: object) -> None:
        """Append one record and make it durable before returning."""
        record = {"key": key, "profile": profile, "check": _check(key, profile), **meta}
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with self._lock:
            if self._shard is None:
                path = self.directory / f"shard-{time.time_ns()}-{os.getpid()}.jsonl"
                self._shard = path.open("ab")
                _fsync_dir(self.directory)
            self._shard.write(line)
            self._shard.flush()
            os.fsync(self._shard.fileno())
            self._entries[key] = profile

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.close()
                self._shard = None

    def __enter__(self) -> ProfileCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_dir(directory: Path) -> None:
    """Make the new shard's directory entry durable too (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
