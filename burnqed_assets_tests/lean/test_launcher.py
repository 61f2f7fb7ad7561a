"""The one launcher of every Lean process: bubblewrap (no network, read-only file system, a
private writable temp dir, unprivileged uid) plus rlimits; the stand-in runs through it too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from burnqed_assets.lean.factory import make_lean_env
from burnqed_assets.lean.launcher import LeanLauncher, SandboxUnavailableError, bwrap_status
from burnqed_assets.lean.repl_client import spawn_supervised
from burnqed_assets.settings import get_settings

REPO = Path(__file__).resolve().parents[2]

# What an `#eval` with IO in an untrusted Lean file would try: write outside its temp dir, open a
# socket, and write where it may.
PROBE = textwrap.dedent("""
    import json, os, socket, sys
    out = {"uid": os.getuid(), "home_is_private": os.path.expanduser("~") == os.environ["TMPDIR"]}
    for name, path in (("repo", sys.argv[1]), ("home", os.path.join(sys.argv[2], "lean_escape_probe")),
                       ("tmp", os.path.join(os.environ["TMPDIR"], "ok.txt"))):
        try:
            with open(path, "w") as fh:
                fh.write("x")
            out[name] = "written"
            os.unlink(path)
        except OSError as exc:
            out[name] = type(exc).__name__
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=3)
        out["net"] = "connected"
    except OSError as exc:
        out["net"] = type(exc).__name__
    print(json.dumps(out))
""")


def _need_bwrap() -> None:
    works, reason = bwrap_status()
    if not works:
        if os.environ.get("CI") and "not installed" in reason:
            pytest.fail(f"CI installs bubblewrap (.ci/run), but: {reason}")
        # A host that forbids user namespaces: the launcher falls back to rlimits and says why.
        pytest.skip(reason)


def _run(launcher: LeanLauncher, argv: list[str]) -> tuple[int, str, str]:
    launch = launcher.prepare(argv, cwd=REPO)
    try:
        proc = spawn_supervised(launch.argv, then=launch.apply_rlimits, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={**os.environ, **launch.env}, start_new_session=True)
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out.decode(), err.decode()
    finally:
        launch.cleanup()


def test_sandboxed_process_cannot_write_outside_its_temp_dir_or_reach_the_network():
    _need_bwrap()
    target = REPO / "lean_escape_probe.txt"
    rc, out, err = _run(LeanLauncher(sandbox="bwrap"), [sys.executable, "-c", PROBE, str(target), str(Path.home())])
    assert rc == 0, err
    import json

    seen = json.loads(out)
    assert seen["repo"] == "OSError" or seen["repo"].endswith("Error"), seen
    assert seen["repo"] != "written" and seen["home"] != "written" and not target.exists()
    assert seen["net"] != "connected"
    assert seen["tmp"] == "written"  # its private temp dir is writable
    assert seen["uid"] == 65534  # unprivileged inside
    assert seen["home_is_private"]  # `~` is the private temp dir: the user's real home is not written


def test_without_the_sandbox_the_same_probe_escapes(tmp_path):
    """The control: the probe itself works, so the sandbox is what stops it."""
    target = tmp_path / "escape.txt"
    rc, out, _ = _run(LeanLauncher(sandbox="rlimits"), [sys.executable, "-c", PROBE, str(target), str(tmp_path)])
    assert rc == 0 and '"repo": "written"' in out


def test_rlimits_apply_in_the_launched_process():
    code = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_CORE)[0])"
    rc, out, _ = _run(LeanLauncher(sandbox="rlimits", memory_cap_mb=1536), [sys.executable, "-c", code])
    assert rc == 0 and out.split() == [str(1536 * 1024 * 1024), "0"]


def test_required_bwrap_missing_is_a_clear_error():
    with pytest.raises(SandboxUnavailableError, match="bubblewrap"):
        LeanLauncher(sandbox="bwrap", bwrap="bwrap-not-installed-here").prepare(["true"])
    assert "rlimits only" in LeanLauncher(sandbox="auto", bwrap="bwrap-not-installed-here").reason


def test_the_standin_repl_runs_inside_the_sandbox(tmp_path):
    _need_bwrap()
    env = make_lean_env(get_settings("demo", tmp_path))
    try:
        state = env.open_theorem("theorem demo_handwritten_1 : ∀ x : ℝ, 3 * x + 2 = 11 → x = 3 := by", "import Mathlib\n")
        assert state.goals and env.verified_by == "stand-in"
        cmd = psutil.Process(env.process.pid).cmdline()
        assert Path(cmd[0]).name == "bwrap" and "--unshare-all" in cmd and "burnqed_assets.lean.repl_standin" in cmd
    finally:
        env.close()


def test_a_working_directory_under_tmp_stays_visible_and_read_only(tmp_path):
    """A checkout under /tmp (a fresh clone, the browser test's copy) must not vanish behind the
    sandbox's private /tmp: the REPL program could not even start."""
    works, why = bwrap_status()
    if not works:
        pytest.skip(f"bubblewrap cannot run here: {why}")
    (tmp_path / "program.txt").write_text("visible")
    launch = LeanLauncher(sandbox="bwrap").prepare(
        [sys.executable, "-c", "import pathlib; p = pathlib.Path('program.txt'); print(p.read_text());"
                               "\ntry:\n    p.write_text('x')\nexcept OSError as e:\n    print(type(e).__name__)"],
        cwd=tmp_path)
    out = subprocess.run(launch.argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["visible", "OSError"], out.stdout
    assert (tmp_path / "program.txt").read_text() == "visible"  # read-only inside


_IGNORING_SUPERVISOR = """
import signal, subprocess
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as under a background shell (SIGINT), copied by Dagster (SIGTERM)
signal.signal(signal.SIGINT, signal.SIG_IGN)
from burnqed_assets.lean.repl_client import spawn_supervised
argv = ["grep", "SigIgn", "/proc/self/status"]
plain = subprocess.run(argv, capture_output=True, text=True).stdout.split()[1]
supervised = spawn_supervised(argv, stdout=subprocess.PIPE, text=True).communicate()[0].split()[1]
print(plain, supervised)
"""


def test_supervised_children_do_not_inherit_ignored_stop_signals():
    """A supervisor that ignores SIGTERM/SIGINT (started from a background shell) must still be
    able to stop its REPLs and servers with SIGTERM: the spawner resets both before exec."""
    out = subprocess.run([sys.executable, "-c", _IGNORING_SUPERVISOR], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    plain, supervised = (int(mask, 16) for mask in out)
    stop_bits = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1))
    assert plain & stop_bits == stop_bits  # what a plain child inherits (the test can fail)
    assert supervised & stop_bits == 0
