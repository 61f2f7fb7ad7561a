"""The one launcher every Lean process goes through (the REPL, `lake`, and the REPL stand-in).

Lean files come from outside (Goedel proofs, model output) and `#eval`/elaborator code runs
with the rights of the process, so each launch gets:
- bubblewrap (`bwrap`, Debian package `bubblewrap`): new user/pid/net/ipc/uts namespaces
  (`--unshare-all`: no network at all), an unprivileged uid/gid inside (65534), the whole
  file system read-only (`--ro-bind / /`: project, toolchain and repository cannot be written),
  a private writable temp directory (also `TMPDIR` and `HOME`), a fresh /tmp tmpfs,
  `--die-with-parent` (the sandbox dies with its supervisor);
- what a real elan/Lake toolchain needs and nothing more: the elan home (`ELAN_HOME`, default
  `~/.elan`: toolchains and the `lake`/`lean` proxies) read-only and first on `PATH`; in a Lake
  project (the working directory holds a `lakefile.toml`/`lakefile.lean`) its `.lake` folder
  writable (`lake build` writes `.lake/build`, `lake env` may refresh `.lake` files); the
  project's sources, its `lake-manifest.json` and everything else read-only; caches that
  Lean, Lake or git put under `HOME`/`XDG_CACHE_HOME` go to the private temp dir and vanish with
  it; `LAKE_NO_CACHE=1` (no download is tried: there is no network);
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
import site
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
    """One prepared launch: the final command line, its private temp dir, the environment
    variables to set for it (`env`: pass `{**os.environ, **launch.env}` to the process), its
    rlimits, and the paths it may write."""

    argv: list[str]
    tmpdir: Path
    rlimits: dict[int, int] = field(default_factory=dict)
    sandbox: str = "rlimits"
    env: dict[str, str] = field(default_factory=dict)
    writable: tuple[str, ...] = ()

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
    elan_home: str | None = None  # the toolchain (ELAN_HOME); None: $ELAN_HOME, else ~/.elan when it exists

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

    def toolchain_home(self) -> str | None:
        """The elan home the launched process uses (resolved on this machine, not pickled)."""
        if self.elan_home:
            return str(Path(self.elan_home).expanduser().resolve())
        env = os.environ.get("ELAN_HOME")
        if env:
            return str(Path(env).expanduser().resolve())
        default = Path.home() / ".elan"
        return str(default.resolve()) if default.is_dir() else None

    def environment(self, tmpdir: Path) -> dict[str, str]:
        """Variables set for every launched process (both sandbox modes)."""
        env = {"TMPDIR": str(tmpdir), "HOME": str(tmpdir), "XDG_CACHE_HOME": str(tmpdir / ".cache"),
               "LAKE_NO_CACHE": "1"}
        elan = self.toolchain_home()
        if elan is not None:
            env["ELAN_HOME"] = elan
            env["PATH"] = os.pathsep.join([str(Path(elan) / "bin"), os.environ.get("PATH", os.defpath)])
        # A Python program launched here (the REPL stand-in) keeps the user site it was installed in.
        env.setdefault("PYTHONUSERBASE", os.environ.get("PYTHONUSERBASE") or site.getuserbase())
        return env

    def prepare(self, argv: Sequence[str], cwd: str | os.PathLike[str] | None = None,
                writable: Sequence[str | os.PathLike[str]] = ()) -> Launch:
        """The sandboxed command line for `argv` run in `cwd`. Writable inside: the private temp
        dir, the `.lake` folder when `cwd` is a Lake project (created if missing), and `writable`."""
        tmpdir = Path(tempfile.mkdtemp(prefix="lean-sandbox-", dir=self.tmp_root))
        argv = [str(a) for a in argv]
        workdir = str(Path(cwd).resolve()) if cwd is not None else os.getcwd()
        rw = [str(Path(w).resolve()) for w in writable]
        if is_lake_project(workdir):
            build = Path(workdir) / ".lake"
            build.mkdir(exist_ok=True)
            rw.insert(0, str(build.resolve()))
        env = self.environment(tmpdir)
        if not self.uses_bwrap:
            return Launch(argv, tmpdir, self.rlimits(), "rlimits", env, tuple(rw))
        elan = env.get("ELAN_HOME")
        wrapped = [
            shutil.which(self.bwrap) or self.bwrap,
            "--unshare-all", "--die-with-parent",
            "--uid", str(NOBODY), "--gid", str(NOBODY),
            "--ro-bind", "/", "/",
            "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp",
            # The fresh /tmp hides a checkout, working directory or toolchain that lives under
            # /tmp (the REPL program and its imports with it): show those again, read-only.
            *[arg for path in _under_tmp(workdir, PACKAGE_ROOT, *([elan] if elan else []))
              for arg in ("--ro-bind", path, path)],
            # Then the writable exceptions, on top of the read-only views (order matters).
            *[arg for path in [str(tmpdir), *rw] for arg in ("--bind", path, path)],
            *[arg for key, value in env.items() for arg in ("--setenv", key, value)],
            "--chdir", workdir,
            "--", *argv,
        ]
        return Launch(wrapped, tmpdir, self.rlimits(), "bwrap", env, tuple(rw))


def is_lake_project(path: str | os.PathLike[str]) -> bool:
    return any((Path(path) / name).is_file() for name in ("lakefile.toml", "lakefile.lean"))
