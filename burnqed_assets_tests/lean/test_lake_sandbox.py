"""A real elan/Lake toolchain in the sandbox, shown with a fake one (no Lean here): `lake` and
`lean` scripts at a fake elan home that do what a real build does (write `.lake/build`, look up
the toolchain through ELAN_HOME, put caches under HOME) and what it must not (write the elan home,
the toolchain, the project's sources or manifest, the user's home, the repository, or reach the
network). Through the launcher in bubblewrap exactly the build's writes succeed; the same scripts
without the sandbox write everywhere (the control). The build's log, in the real Lake format,
goes through `run_lake_build` → `parse_lake_build_log` → verdicts → triage."""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from burnqed_assets.lean.lake_project import run_lake_build, verdicts_from_build, write_lake_project
from burnqed_assets.lean.launcher import LeanLauncher, bwrap_status
from burnqed_assets.lean.migration import triage

REPO = Path(__file__).resolve().parents[2]
TOOLCHAIN = "leanprover--lean4---v4.27.0"

FAKE_LAKE = textwrap.dedent('''\
    #!{python}
    # Fake `lake` (elan proxy position: $ELAN_HOME/bin/lake). Tries every write a build might do.
    import errno, json, os, socket, subprocess, sys
    CONST = {const!r}

    def attempt(path):
        try:
            if os.path.dirname(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write("x")
            if CONST["cleanup"].get(path):
                os.unlink(path)
            return "written"
        except OSError as exc:
            return errno.errorcode.get(exc.errno, str(exc.errno))

    elan = os.environ["ELAN_HOME"]
    lean = os.path.join(elan, "toolchains", CONST["toolchain"], "bin", "lean")
    probe = {{
        "home": os.environ["HOME"], "tmpdir": os.environ["TMPDIR"], "elan_home": elan,
        "lake_no_cache": os.environ.get("LAKE_NO_CACHE"), "cwd": os.getcwd(),
        "build_dir": attempt(".lake/build/lib/GoedelMigrated/P_a.trace"),
        "home_cache": attempt(os.path.join(os.environ["HOME"], ".cache", "lake", "artifact")),
        "elan_settings": attempt(os.path.join(elan, "settings.toml")),
        "toolchain": attempt(os.path.join(elan, "toolchains", CONST["toolchain"], "lib", "x.olean")),
        "manifest": attempt("lake-manifest.json"),
        "source": attempt("GoedelMigrated/P_a.lean"),
        "real_home": attempt(os.path.join(CONST["real_home"], "lean_escape_probe")),
        "repo": attempt(os.path.join(CONST["repo"], "lean_escape_probe.txt")),
    }}
    try:
        socket.create_connection(("127.0.0.1", CONST["port"]), timeout=3).close()
        probe["network"] = "connected"
    except OSError as exc:
        probe["network"] = type(exc).__name__
    # the compiler of the project's toolchain, as `lake build` runs it: writes the .olean
    lean_run = subprocess.run([lean, "GoedelMigrated/P_a.lean", "-o", ".lake/build/lib/GoedelMigrated/P_a.olean"],
                              capture_output=True, text=True)
    probe["lean"] = lean_run.stdout.strip() or lean_run.stderr.strip()
    print("PROBE " + json.dumps(probe), flush=True)
    # then the rest of a real Lake log (current format: lake_logs/lake_2026_required_targets.log)
    print("✔ [2/3] Built GoedelMigrated.P_a (1.1s)")
    print("✖ [3/3] Building GoedelMigrated.P_b (0.9s)")
    print("trace: .> LEAN_PATH=... " + lean + " GoedelMigrated/P_b.lean -o ... --json")
    print("error: GoedelMigrated/P_b.lean:4:8: Unknown identifier `div_le_div_iff`")
    print("error: Lean exited with code 1")
    print("Some required targets logged failures:")
    print("- GoedelMigrated.P_b")
    print("error: build failed")
    sys.exit(1)
''')

FAKE_LEAN = textwrap.dedent('''\
    #!{python}
    # Fake `lean` of the toolchain: writes its -o output, then tries to write next to the source.
    import sys
    out = sys.argv[sys.argv.index("-o") + 1]
    results = []
    for path in (out, sys.argv[1] + ".ilean"):
        try:
            with open(path, "w") as fh:
                fh.write("olean")
            results.append("written")
        except OSError as exc:
            results.append(type(exc).__name__ + ":" + str(exc.errno))
    print("lean " + " ".join(results))
''')

PROOFS = [{"problem_id": "a", "full_proof": "import Mathlib\n\ntheorem a : 1 = 1 := by\n  rfl\n"},
          {"problem_id": "b", "full_proof": "import Mathlib\n\ntheorem b (x : ℝ) : x = x := by\n  rw [div_le_div_iff]\n"}]


def _fake_toolchain(root: Path, port: int, cleanup: bool) -> Path:
    elan = root / "fake_home" / ".elan"
    (elan / "bin").mkdir(parents=True)
    (elan / "toolchains" / TOOLCHAIN / "bin").mkdir(parents=True)
    (elan / "toolchains" / TOOLCHAIN / "lib").mkdir()
    (elan / "settings.toml").write_text('default_toolchain = "leanprover/lean4:v4.27.0"\n')
    real_home = str(Path.home())
    const = {"toolchain": TOOLCHAIN, "real_home": real_home, "repo": str(REPO), "port": port,
             "cleanup": {os.path.join(real_home, "lean_escape_probe"): cleanup,
                         os.path.join(str(REPO), "lean_escape_probe.txt"): cleanup}}
    for path, text in ((elan / "bin" / "lake", FAKE_LAKE.format(python=sys.executable, const=const)),
                       (elan / "toolchains" / TOOLCHAIN / "bin" / "lean", FAKE_LEAN.format(python=sys.executable))):
        path.write_text(text)
        path.chmod(0o755)
    return elan


@pytest.fixture
def listener():
    """A server on the host's loopback: the sandbox (own network namespace) must not reach it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv.getsockname()[1]
    srv.close()


def _build(tmp_path: Path, port: int, sandbox: str):
    elan = _fake_toolchain(tmp_path, port, cleanup=sandbox != "bwrap")
    project = write_lake_project(tmp_path / "project", PROOFS, "v4.27.0", "v4.27.0")
    before = {p: p.read_bytes() for p in project.dir.rglob("*") if p.is_file() and ".git" not in p.parts}
    elan_before = {p: p.read_bytes() for p in elan.rglob("*") if p.is_file()}
    launcher = LeanLauncher(sandbox=sandbox, elan_home=str(elan), tmp_root=str(tmp_path))
    run = run_lake_build(project.dir, launcher, lake=("lake",), log_path=tmp_path / "build.log")  # `lake` via PATH
    probe = json.loads(next(line for line in run.log.splitlines() if line.startswith("PROBE "))[6:])
    return project, run, probe, before, elan_before, elan


def test_the_sandbox_permits_exactly_what_a_lake_build_needs(tmp_path, listener):
    works, why = bwrap_status()
    if not works:
        pytest.skip(f"bubblewrap cannot run here: {why}")
    project, run, probe, before, elan_before, elan = _build(tmp_path, listener, "bwrap")
    # what the build needs
    assert probe["build_dir"] == "written" and probe["home_cache"] == "written"
    assert probe["lean"] == f"lean written OSError:{errno.EROFS}"  # the .olean yes, next to the source no
    assert (project.dir / ".lake" / "build" / "lib" / "GoedelMigrated" / "P_a.olean").read_text() == "olean"
    assert probe["elan_home"] == str(elan.resolve()) and probe["lake_no_cache"] == "1"
    assert probe["home"] == probe["tmpdir"] != str(Path.home())  # HOME is the private temp dir
    assert probe["cwd"] == str(project.dir.resolve())
    # what it must not do: read-only (EROFS), not merely absent
    for key in ("elan_settings", "toolchain", "manifest", "source", "real_home", "repo"):
        assert probe[key] == "EROFS", (key, probe[key])
    assert probe["network"] in ("ConnectionRefusedError", "OSError"), probe["network"]  # own loopback: no listener
    assert {p: p.read_bytes() for p in elan.rglob("*") if p.is_file()} == elan_before
    assert {p: p.read_bytes() for p in before} == before and not (project.dir / "lake-manifest.json").exists()
    assert not (REPO / "lean_escape_probe.txt").exists() and not (Path.home() / "lean_escape_probe").exists()
    assert not Path(probe["tmpdir"]).exists()  # the private temp dir (and the caches in it) is gone

    # the log: Lake's real format, parsed into per-module verdicts and triage categories
    assert run.returncode == 1 and not run.ok and (tmp_path / "build.log").read_text() == run.log
    assert run.parsed.failed_modules == ("GoedelMigrated.P_b",)
    verdicts = verdicts_from_build(run, project)
    assert verdicts["a"].ok and not verdicts["b"].ok
    assert triage(verdicts["b"]) == "api_rename" and verdicts["b"].source == "lean (lake build)"


def test_without_the_sandbox_the_same_toolchain_writes_everywhere(tmp_path, listener):
    """The control: the fake toolchain's writes and its connection work when nothing stops them."""
    project, run, probe, *_ = _build(tmp_path, listener, "rlimits")
    for key in ("build_dir", "elan_settings", "toolchain", "manifest", "source", "real_home", "repo"):
        assert probe[key] == "written", (key, probe[key])
    assert probe["network"] == "connected" and probe["lean"] == "lean written written"
    assert probe["home"] == probe["tmpdir"]  # HOME is private in both modes
