"""What a raw input looks like right now: content fingerprint, size, files, rows.

The defs layer records this as an observation of the input's external asset (its data version
is the fingerprint), so the UI shows when an input changed and which assets it made stale.
Small files are hashed (a `touch` alone changes nothing); files above `hash_limit_bytes`
contribute (size, mtime_ns) so a tick over a multi-GB dataset stays cheap. Hidden entries
(.git, editor swap files) are skipped.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from burnqed_assets.data.io import file_sha256

HASH_LIMIT_BYTES = 16 * 1024 * 1024
MISSING = "missing"
ROW_SUFFIXES = (".jsonl",)  # one record a line; a .json file counts its top-level list or object

# (path, size, mtime_ns) -> sha256 / rows: the code server lives across sensor ticks, so an
# unchanged multi-GB dataset is read once, not every minute.
_DIGEST_CACHE: dict[tuple[str, int, int], str] = {}
_ROWS_CACHE: dict[tuple[str, int, int], int | None] = {}
# Like git's racy-timestamp rule: a file modified in the last 2 s may change again within the
# same mtime tick, so it is read afresh and not cached.
_RACY_WINDOW_NS = 2_000_000_000
_CACHE_LIMIT = 100_000


def _cached(cache: dict, path: Path, compute):
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if time.time_ns() - st.st_mtime_ns < _RACY_WINDOW_NS:
        return compute(path)
    if key not in cache:
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        cache[key] = compute(path)
    return cache[key]


def _file_digest(path: Path) -> str:
    return _cached(_DIGEST_CACHE, path, lambda p: file_sha256(p))


def _count_rows(path: Path) -> int | None:
    if path.suffix in ROW_SUFFIXES:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip())
    if path.suffix == ".json":
        import json

        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        return len(value) if isinstance(value, (list, dict)) else None
    return None


def input_files(path: Path) -> list[tuple[str, Path]]:
    """(relative name, path) of every visible file of a file or directory input, sorted."""
    if path.is_file():
        return [(path.name, path)]
    return sorted((str(p.relative_to(path)), p) for p in path.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))


def fingerprint_path(path: str | Path, hash_limit_bytes: int = HASH_LIMIT_BYTES) -> str:
    """A short content fingerprint of a file or directory tree; "missing" when absent."""
    path = Path(path)
    if not path.exists():
        return MISSING
    h = hashlib.sha256()
    for rel, f in input_files(path):
        st = f.stat()
        h.update(f"{rel}\0{st.st_size}\0".encode())
        h.update((_file_digest(f) if st.st_size <= hash_limit_bytes else str(st.st_mtime_ns)).encode())
    return h.hexdigest()[:20]


@dataclass(frozen=True)
class InputObservation:
    path: str
    fingerprint: str  # "missing" when the input is absent
    bytes: int
    files: int
    rows: int | None  # records in .jsonl/.json files; None when no file has countable rows

    @property
    def exists(self) -> bool:
        return self.fingerprint != MISSING

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def observe_input(path: str | Path, hash_limit_bytes: int = HASH_LIMIT_BYTES) -> InputObservation:
    path = Path(path)
    if not path.exists():
        return InputObservation(str(path), MISSING, 0, 0, None)
    files = input_files(path)
    counts = [_cached(_ROWS_CACHE, f, _count_rows) for _, f in files]
    known = [c for c in counts if c is not None]
    return InputObservation(path=str(path), fingerprint=fingerprint_path(path, hash_limit_bytes),
                            bytes=sum(f.stat().st_size for _, f in files), files=len(files),
                            rows=sum(known) if known else None)
