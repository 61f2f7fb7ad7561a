"""The one launcher every Lean process goes through (the REPL, `lake`, and the REPL stand-in).

Lean files come from outside (Goedel proofs, model output) and `#eval`/elaborator code runs
with the rights of the process, so each launch gets:
- bubblewrap (`bwrap`, Debian package `bubblewrap`): new user/pid/net/ipc/uts namespaces
  (`--unshare-all`: no network at all), an unprivileged uid/gid inside (65534), the whole
  file system read-only (`--ro-bind / /`: project, toolchain and repository cannot be written),
  a private writable temp directory (the only writable path, also `TMPDIR`), a fresh /tmp
  tmpfs, `--die-with-parent` (the sandbox dies with its supervisor);
- resource limits set in the child before exec (address space = the memory cap, file size,
  no core dumps), whether or not bwrap is used.

`sandbox="auto"` uses bwrap when a probe run works on this host and otherwise falls back to
rlimits only, with the reason in `LeanLauncher.reason` (and the pool's metadata);
`sandbox="bwrap"` refuses to run without it (the full profile's default); `"rlimits"` never
uses it (a documented choice, e.g. a host that forbids user namespaces).
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SANDBOX_MODES = ("auto", "bwrap", "rlimits")
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the checkout the REPL program runs from


def _under_tmp(*paths: str) -> list[str]:
    """The given directories that lie under /tmp (the sandbox mounts a fresh /tmp), deduplicated."""
    out: list[str] = []
    for path in paths:
        resolved = str(Path(path).resolve())
        if (resolved == "/tmp" or resolved.startswith("/tmp/")) and resolved not in out:
            out.append(resolved)
    return out
NOBODY = 65534


class SandboxUnavailableError(RuntimeError):
    """`sandbox="bwrap"` was asked for and bubblewrap cannot run here."""


@functools.lru_cache(maxsize=4)
def bwrap_status(bwrap: str = "bwrap") -> tuple[bool, str]:
    """(works, reason): run the probe sandbox once per process (cached)."""
    path = shutil.which(bwrap)
    if path is None:
        return False, "bubblewrap is not installed (apt-get install -y bubblewrap)"
    probe = [path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev",
             "--proc", "/proc", "--tmpfs", "/tmp", "true"]
    try:
        run = subprocess.run(probe, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bubblewrap probe failed: {exc}"
    if run.returncode != 0:
        err = run.stderr.decode("utf-8", "replace").strip()[:300]
        return False, f"bubblewrap cannot create namespaces here ({err or 'exit ' + str(run.returncode)})"
    return True, f"bubblewrap {path}"


@dataclass(frozen=True)
class Launch:
    """One prepared launch: the final command line, its private temp dir and its rlimits."""

    argv: list[str]
    tmpdir: Path
    rlimits: dict[int, int] = field(default_factory=dict)
    sandbox: str = "rlimits"

    def apply_rlimits(self) -> None:
        """In the child, before exec."""
        for res, value in self.rlimits.items():
            try:
                resource.setrlimit(res, (value, value))
            except (ValueError, OSError):
                pass

    def cleanup(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)


@dataclass(frozen=True)
class LeanLauncher:
    """Picklable launch policy; `prepare(argv, cwd)` gives the sandboxed command line."""

    sandbox: str = "auto"
    memory_cap_mb: int | None = 8192
    file_size_mb: int = 2048
    tmp_root: str | None = None  # where private temp dirs are created (default: the system temp dir)
    bwrap: str = "bwrap"

    def __post_init__(self) -> None:
        if self.sandbox not in SANDBOX_MODES:
            raise ValueError(f"unknown sandbox {self.sandbox!r}; choose one of {SANDBOX_MODES}")

    @property
    def uses_bwrap(self) -> bool:
        if self.sandbox == "rlimits":
            return False
        works, reason = bwrap_status(self.bwrap)
        if not works and self.sandbox == "bwrap":
            raise SandboxUnavailableError(f"sandbox='bwrap' but {reason}; install bubblewrap or set "
                                          "lean.sandbox='rlimits' knowingly (docs/lean.md, Sandbox)")
        return works

    @property
    def reason(self) -> str:
        if self.sandbox == "rlimits":
            return "rlimits only: chosen by settings (lean.sandbox='rlimits')"
        works, why = bwrap_status(self.bwrap)
        return why if works else f"rlimits only: {why}"

    def rlimits(self) -> dict[int, int]:
        out = {resource.RLIMIT_CORE: 0, resource.RLIMIT_FSIZE: self.file_size_mb * 1024 * 1024}
        if self.memory_cap_mb:
            out[resource.RLIMIT_AS] = int(self.memory_cap_mb) * 1024 * 1024
        return out

    def prepare(self, argv: Sequence[str], cwd: str | os.PathLike[str] | None = None) -> Launch:
        tmpdir = Path(tempfile.mkdtemp(prefix="lean-sandbox-", dir=self.tmp_root))
        argv = [str(a) for a in argv]
        if not self.uses_bwrap:
            return Launch(argv, tmpdir, self.rlimits(), "rlimits")
        workdir = str(Path(cwd).resolve()) if cwd is not None else os.getcwd()
        wrapped = [
            shutil.which(self.bwrap) or self.bwrap,
            "--unshare-all", "--die-with-parent",
            "--uid", str(NOBODY), "--gid", str(NOBODY),
            "--ro-bind", "/", "/",
            "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp",
            "--bind", str(tmpdir), str(tmpdir),
            # The fresh /tmp hides a checkout (or working directory) that lives under /tmp, the
            # REPL program and its imports with it: show those again, read-only.
            *[arg for path in _under_tmp(workdir, PACKAGE_ROOT) for arg in ("--ro-bind", path, path)],
            "--setenv", "TMPDIR", str(tmpdir),
            "--chdir", workdir,
            "--", *argv,
        ]
        return Launch(wrapped, tmpdir, self.rlimits(), "bwrap")
