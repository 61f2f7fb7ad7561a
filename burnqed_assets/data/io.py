"""Atomic writes and line-checked JSONL reading.

Every writer goes through a temp file in the destination folder and an `os.replace`, so an
interrupted run leaves either the old file or the new one, never half of one. Readers
report each bad line as `path:line: reason`, count it, and never drop it silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


class BadInputError(ValueError):
    """Raised when input lines are rejected; the message lists `file:line: reason`."""

    def __init__(self, problems: list[BadLine], total: int | None = None):
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} bad input line(s):\n{shown}{more}")


@dataclass(frozen=True)
class BadLine:
    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class LineReport:
    """What a reader saw: rows read and every rejected line with its location."""

    rows: int = 0
    bad: list[BadLine] = field(default_factory=list)

    def add(self, path: Path, line: int, reason: str) -> None:
        self.bad.append(BadLine(Path(path), line, reason))

    @property
    def bad_count(self) -> int:
        return len(self.bad)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows,
            "bad_lines": self.bad_count,
            "bad_line_examples": [str(b) for b in self.bad[:10]],
        }


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path next to `dest`; rename it over `dest` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


class ConcurrentWrite:
    """Writes `buffers` to a new file at `path` from `threads` threads, each `os.pwrite`-ing its
    own share of the buffers: the kernel's copies into the page cache run side by side (the GIL
    is released during `pwrite`) and alongside the caller's own work until `wait`, which
    re-raises a thread's error. The buffers go one after the other from offset 0, or each at
    its own offset (`offsets`, into a file of `size` bytes whose other ranges others write)."""

    def __init__(self, path: str | os.PathLike[str], buffers: list[bytes], threads: int = 2,
                 offsets: list[int] | None = None, size: int | None = None) -> None:
        if offsets is None:
            offsets = [0]
            for b in buffers[:-1]:
                offsets.append(offsets[-1] + len(b))
        self.size = size if size is not None else sum(map(len, buffers))
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._errors: list[BaseException] = []
        try:
            os.ftruncate(self._fd, self.size)
        except BaseException:
            os.close(self._fd)
            raise
        # contiguous shares of the buffers, about an equal number of bytes each
        total, cuts, done = sum(map(len, buffers)), [0], 0
        for i, b in enumerate(buffers):
            done += len(b)
            if len(cuts) < threads and done >= total * len(cuts) / threads:
                cuts.append(i + 1)
        cuts.append(len(buffers))
        shares = [(buffers[a:b], offsets[a:b]) for a, b in zip(cuts, cuts[1:]) if b > a]
        self._threads = [threading.Thread(target=self._run, args=share, daemon=True) for share in shares]
        for t in self._threads:
            t.start()

    def _run(self, buffers: list[bytes], offsets: list[int]) -> None:
        try:
            for data, offset in zip(buffers, offsets):
                pwrite_all(self._fd, data, offset)
        except BaseException as exc:  # handed to `wait`
            self._errors.append(exc)

    def wait(self) -> None:
        for t in self._threads:
            t.join()
        os.close(self._fd)
        if self._errors:
            raise self._errors[0]


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset` of the open file `fd` (`os.pwrite` may write less)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def usable_cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


MAX_FORKED_WORKERS = 8  # processes one data step forks, at most


def forked_workers(size: int, bytes_per_worker: int) -> int:
    """Processes for work on `size` bytes: one per usable CPU (at most MAX_FORKED_WORKERS), each
    with at least `bytes_per_worker` of it (a smaller share costs more to fork than it saves)."""
    return max(1, min(usable_cpus(), MAX_FORKED_WORKERS, size // bytes_per_worker))


def run_forked(tasks: list[Callable[[], None]]) -> None:
    """Run `tasks[0]` here and each other task at the same time in a forked child process (it
    sees this process's memory as it was, with no pickling); return when all are done, raising
    if a child failed (its traceback is on stderr). Without fork the tasks run one by one."""
    import multiprocessing as mp

    if len(tasks) < 2 or "fork" not in mp.get_all_start_methods():
        for task in tasks:
            task()
        return
    ctx = mp.get_context("fork")
    children = []
    try:
        for task in tasks[1:]:
            child = ctx.Process(target=task, daemon=True)
            child.start()
            children.append(child)
    except (OSError, AssertionError):  # no child processes here (e.g. in a daemon): run them here
        tasks = tasks[:1] + tasks[1 + len(children):]
        for task in tasks[1:]:
            task()
    try:
        tasks[0]()
    finally:
        for child in children:
            child.join()
    failed = [c.exitcode for c in children if c.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(children)} forked worker(s) failed (exit codes {failed})")


@contextlib.contextmanager
def atomic_open(dest: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    with atomic_path(dest) as tmp:
        kwargs = {} if "b" in mode else {"encoding": "utf-8"}
        with open(tmp, mode, **kwargs) as fh:
            yield fh


def write_json(dest: str | os.PathLike[str], obj: Any) -> Path:
    # one dumps + one write: json.dump writes every token separately (~5x slower on large reports)
    text = json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False, default=_json_default)
    with atomic_open(dest) as fh:
        fh.write(text + "\n")
    return Path(dest)


def write_jsonl(dest: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_open(dest) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=_json_default))
            fh.write("\n")
            n += 1
    return n


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (fingerprints for resume and manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | os.PathLike[str]) -> Any:
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:  # name the place, not just the byte offset
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise BadInputError([BadLine(Path(path), line, f"invalid UTF-8 (byte 0x{data[exc.start]:02x} at byte "
                                                       f"column {column})")]) from None
    return json.loads(text)


def iter_jsonl(
    path: str | os.PathLike[str],
    report: LineReport | None = None,
    validate: Callable[[dict[str, Any]], str | None] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, record)` for each good line of a JSONL file.

    A line that is not a JSON object, or that `validate` rejects (it returns a reason),
    is recorded in `report` with its location; without a report it raises at once.
    Blank lines are skipped (they carry no record).
    """
    path = Path(path)
    with open(path, "rb") as fh:  # decoded per line: invalid UTF-8 is that line's error, with its number
        for lineno, raw_bytes in enumerate(fh, start=1):
            reason: str | None
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                rec, reason = None, (f"invalid UTF-8 (byte 0x{raw_bytes[exc.start]:02x} at byte column "
                                     f"{exc.start + 1})")
            else:
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                    reason = None if isinstance(rec, dict) else f"expected a JSON object, got {type(rec).__name__}"
                except json.JSONDecodeError as exc:
                    rec, reason = None, f"malformed JSON ({exc.msg} at column {exc.colno})"
            if reason is None and validate is not None:
                reason = validate(rec)
            if reason is not None:
                if report is None:
                    raise BadInputError([BadLine(path, lineno, reason)])
                report.add(path, lineno, reason)
                continue
            if report is not None:
                report.rows += 1
            yield lineno, rec


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
