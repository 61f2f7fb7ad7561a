"""Resumable runs, theorem selection, stats, evaluate_benchmark, and the real replay backend."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from burnqed_assets.search.engine import SearchConfig, Theorem, make_verifier, search_theorem
from burnqed_assets.search.run import (
    PolicyEndpoint,
    evaluate_benchmark,
    hardness_tier,
    load_benchmark,
    run_search,
    select_contrastive_pool,
    trajectory_stats,
)
from burnqed_assets.settings import get_settings
from search_fakes import PROVED, FakeEnv, TablePolicy, world

CFG = SearchConfig(max_nodes=50, timeout_s=10, num_candidates=4, temperature=1.0)


def test_interrupted_run_resumes_without_duplicates(tmp_path):
    theorems, roots, tr, policy = world()
    out = tmp_path / "traj.parquet"

    class Interrupt(Exception):
        pass

    seen = []

    def progress(done, total, res):
        seen.append(res.theorem)
        if len(seen) == 3:
            raise Interrupt  # the run dies after three theorems were committed

    with pytest.raises(Interrupt):
        run_search(theorems, FakeEnv(roots, tr), policy, CFG, out, progress=progress)
    assert not out.exists()
    parts = list((tmp_path / "traj.parquet.parts").glob("*.parquet"))
    assert len(parts) == 3

    env2 = FakeEnv(roots, tr)
    run = run_search(theorems + theorems[:2], env2, policy, CFG, out)  # duplicates in the input, too
    assert run.resumed == 3 and run.searched == 3
    table = pq.read_table(out)
    per_theorem = table.group_by("theorem").aggregate([("state_id", "count")]).to_pylist()
    assert len(per_theorem) == 6
    pairs = list(zip(table.column("theorem").to_pylist(), table.column("state_id").to_pylist()))
    assert len(pairs) == len(set(pairs))
    assert [r["theorem"] for r in run.results] == [t.name for t in theorems]
    assert run.proved == 4  # i % 3 != 0
    assert not (tmp_path / "traj.parquet.parts").exists()

    stats = run.stats()
    assert stats == trajectory_stats(run.results, run.depth_counts, run.label_counts)
    assert stats.total_records == table.num_rows == run.rows
    assert stats.theorems_proved == 4 and stats.theorems_attempted == 6
    assert stats.label_counts["positive"] == 4 * 4  # root, m, n, no goals
    assert stats.label_counts["negative"] >= 4  # the expanded junk states
    assert stats.depth_distribution["3"] > 0
    assert 0 < stats.deep_state_share or stats.max_depth < 4


def test_changed_configuration_discards_old_parts(tmp_path):
    theorems, roots, tr, policy = world(2)
    out = tmp_path / "t.parquet"
    run_search(theorems, FakeEnv(roots, tr), policy, CFG, out, keep_parts=True)
    run = run_search(theorems, FakeEnv(roots, tr), policy, CFG, out, fingerprint={"model": "other"})
    assert run.resumed == 0 and run.searched == 2


def test_one_failing_theorem_never_stops_the_run(tmp_path):
    theorems, roots, tr, policy = world(4)
    env = FakeEnv(roots, tr, raise_on={"thm1"})
    run = run_search(theorems, env, policy, CFG, tmp_path / "x.parquet", concurrency=2)
    assert run.errors == 1 and run.attempted == 4
    bad = [r for r in run.results if r["theorem"] == "thm1"][0]
    assert bad["stop_reason"] == "error" and "crashed" in bad["error"]


def test_select_contrastive_pool_orders_hard_first_and_counts_skips():
    pool = [
        {"theorem": "goedel::lean_workbook_1", "max_depth": 5, "num_pairs": 5, "source": "goedel_workbook",
         "formal_statement": "theorem a : True := by"},
        {"theorem": "goedel::amc12_2000_p1", "max_depth": 3, "num_pairs": 3, "source": "goedel_workbook",
         "formal_statement": "theorem b : True := by"},
        {"theorem": "goedel::imo_1959_p1", "max_depth": 4, "num_pairs": 4, "source": "goedel_workbook",
         "formal_statement": "theorem c : True := by"},
        {"theorem": "goedel::shallow", "max_depth": 2, "num_pairs": 2, "source": "goedel_workbook",
         "formal_statement": "theorem d : True := by"},
        {"theorem": "goedel::nostmt", "max_depth": 6, "num_pairs": 6, "source": "goedel_workbook",
         "formal_statement": None},
    ]
    sel = select_contrastive_pool(pool, max_theorems=2, min_depth=3)
    assert [e["theorem"] for e in sel.selected] == ["goedel::imo_1959_p1", "goedel::amc12_2000_p1"]
    assert sel.too_shallow == 1 and sel.missing_statement == 1
    assert "nostmt" in sel.missing_statement_examples[0]
    assert hardness_tier({"theorem": "mathd_algebra_1"}) > hardness_tier({"theorem": "usamo_2000"})


def test_evaluate_benchmark_writes_results(tmp_path):
    theorems, roots, tr, policy = world(3)
    problems = [{"name": t.name, "formal_statement": t.formal_statement, "header": "", "source": "fake"}
                for t in theorems]
    settings = get_settings("demo", tmp_path)
    out = evaluate_benchmark(problems, FakeEnv(roots, tr), policy, settings, out_path=tmp_path / "res.parquet")
    assert out.attempted == 3 and out.proved == 2 and abs(out.rate - 2 / 3) < 1e-9
    assert out.as_dict()["stats"]["theorems_attempted"] == 3 and "endpoint_theorems" not in out.as_dict()
    res = pq.read_table(tmp_path / "res.parquet").to_pylist()
    assert [r["proved"] for r in res] == [False, True, True]
    assert res[1]["proof"] == "step\nstep\nstep"


def test_load_benchmark_names_bad_records(tmp_path):
    p = tmp_path / "b.json"
    p.write_text('[{"name": "a", "formal_statement": "theorem a : True := by"}, {"name": "b"}]')
    with pytest.raises(Exception, match="b.json:2"):
        load_benchmark(p)
    p.write_text('[{"name": "a", "formal_statement": "theorem a : True := by"}]')
    assert len(load_benchmark(p, limit=5)) == 1


def test_replay_backend_proves_a_recorded_minif2f_theorem(tmp_path):
    """The real replay table: a policy offering the recorded tactic proves mathd_algebra_478 and
    the Lean layer's verifier accepts it (verified by replay)."""
    from burnqed_assets.lean import make_lean_env

    settings = get_settings("demo", tmp_path)
    env = make_lean_env(settings)
    stmt = ("theorem mathd_algebra_478 (b h v : ℝ) (h₀ : 0 < b ∧ 0 < h ∧ 0 < v) (h₁ : v = 1 / 3 * (b * h))\n"
            "    (h₂ : b = 30) (h₃ : h = 13 / 2) : v = 65 := by")
    root = env.open_theorem(stmt, "import Mathlib")
    policy = TablePolicy({root.pp: [("simp", -0.2), ("field_simp [h₁, h₂, h₃] <;> ring", -1.0)]})
    res = search_theorem(Theorem("mathd_algebra_478", stmt, "import Mathlib"), env, policy, CFG,
                         verifier=make_verifier(env, settings))
    assert res.proved, res
    assert res.proof == ["field_simp [h₁, h₂, h₃] <;> ring"]
    assert res.tactic_errors == 1  # "simp" is not in the replay table


def test_policy_server_down_stops_the_run_and_a_rerun_resumes(tmp_path):
    from burnqed_assets.search.pooled import search_many
    from burnqed_assets.search.policy import PolicyError, SearchInfrastructureError

    theorems, roots, tr, policy = world(6)

    class FailingAfter(TablePolicy):
        def __init__(self, ok_calls):
            super().__init__(policy.table, policy.default)
            self.ok_calls = ok_calls

        def generate(self, state, n, temperature):
            if self.calls >= self.ok_calls:
                raise PolicyError("SGLang http://127.0.0.1:30000/generate failed after 4 attempt(s)")
            return super().generate(state, n, temperature)

    out = tmp_path / "t.parquet"
    with pytest.raises(PolicyError):
        run_search(theorems, FakeEnv(roots, tr), FailingAfter(7), CFG, out, concurrency=2)
    kept = len(list((tmp_path / "t.parquet.parts").glob("*.parquet")))
    assert 1 <= kept < 6  # finished theorems kept, the failed one not recorded
    run = run_search(theorems, FakeEnv(roots, tr), policy, CFG, out)
    assert run.resumed == kept and run.searched == 6 - kept and run.errors == 0 and run.proved == 4

    def broken_factory():
        raise OSError("lean executable not found")

    with pytest.raises(SearchInfrastructureError, match="could not start the Lean env.*not found"):
        search_many(theorems, broken_factory, policy, CFG, concurrency=2)


TIMING = {"elapsed_s", "policy_s", "lean_s", "scorer_s"}


def _untimed(results):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in results]


@pytest.mark.parametrize("shared_env", [True, False])
def test_fan_out_over_endpoints_gives_the_single_endpoint_results(tmp_path, shared_env):
    theorems, roots, tr, _ = world(9)
    single = TablePolicy({}, default=[("junk", -0.1), ("step", -0.5)])
    one = run_search(theorems, FakeEnv(roots, tr), single, CFG, tmp_path / "one.parquet", concurrency=2)
    a, b = (TablePolicy({}, default=[("junk", -0.1), ("step", -0.5)]) for _ in range(2))
    env = FakeEnv(roots, tr) if shared_env else (lambda: FakeEnv(roots, tr))
    fan = run_search(theorems, env, [PolicyEndpoint(a, 2, "gpu0"), PolicyEndpoint(b, 1, "gpu1")], CFG,
                     tmp_path / "fan.parquet")
    assert a.calls > 0 and b.calls > 0 and a.calls + b.calls == single.calls  # both endpoints served
    assert _untimed(fan.results) == _untimed(one.results)
    fan_rows, one_rows = (pq.read_table(tmp_path / f"{n}.parquet").drop_columns(["elapsed_s"]) for n in ("fan", "one"))
    assert fan_rows.num_rows > 0 and fan_rows.equals(one_rows)  # the same trees, row for row


def test_a_slow_endpoint_takes_fewer_theorems_from_the_shared_queue(tmp_path):
    """Dynamic assignment: every endpoint slot takes the next theorem when it is free, so an
    endpoint answering 20x slower searches fewer theorems, and the trees do not change."""
    import time

    class Slow(TablePolicy):
        def __init__(self, delay_s):
            super().__init__({}, default=[("junk", -0.1), ("step", -0.5)])
            self.delay_s = delay_s

        def generate(self, state, n, temperature):
            time.sleep(self.delay_s)
            return super().generate(state, n, temperature)

    theorems, roots, tr, _ = world(12)
    one = run_search(theorems, FakeEnv(roots, tr), Slow(0.0), CFG, tmp_path / "one.parquet")
    fan = run_search(theorems, lambda: FakeEnv(roots, tr),
                     [PolicyEndpoint(Slow(0.002), 1, "fast"), PolicyEndpoint(Slow(0.04), 1, "slow")], CFG,
                     tmp_path / "fan.parquet")
    assert sum(fan.endpoint_theorems.values()) == 12
    assert fan.endpoint_theorems["slow"] < fan.endpoint_theorems["fast"], fan.endpoint_theorems
    assert _untimed(fan.results) == _untimed(one.results)


def canned_world(n: int):
    """Theorems whose transitions are the serving stand-in's canned tactics (some close, some not)."""
    from burnqed_assets.search.serving_standin import CANNED_TACTICS

    names = [f"thm{i}" for i in range(n)]
    roots = {name: f"⊢ r{i}" for i, name in enumerate(names)}
    tr: dict[str, dict[str, str]] = {}
    for i in range(len(names)):
        tr[f"⊢ r{i}"] = {t: f"⊢ m{i}_{k}" for k, t in enumerate(CANNED_TACTICS)}
        for k in range(len(CANNED_TACTICS)):
            tr[f"⊢ m{i}_{k}"] = {t: PROVED for t in CANNED_TACTICS} if (i + k) % 3 == 0 else {}
    return [Theorem(name, name) for name in names], roots, tr


def _served_settings(tmp_path, **search):
    import dataclasses

    from burnqed_assets.settings import with_overrides

    base = get_settings("demo", tmp_path)
    return with_overrides(base, search=dataclasses.replace(
        base.search, policy_backend="sglang", http_retries=1, sglang_port=0, sglang_startup_timeout_s=60.0, **search))


def test_fan_out_over_two_policy_servers_gives_the_one_server_results(tmp_path):
    """Two serving stand-ins (SGLang's HTTP API; not SGLang) as unmanaged endpoints in
    settings.search.sglang_urls: the same trees as through one server, and both served."""
    from burnqed_assets.search.pipeline import policy_session
    from burnqed_assets.search.serving import STANDIN_LAUNCHER, ManagedServer, ServerSpec

    theorems, roots, tr = canned_world(8)
    model = tmp_path / "model"
    model.mkdir()
    spec = ServerSpec(launcher=tuple(STANDIN_LAUNCHER), port=0, startup_timeout_s=60.0, poll_interval_s=0.1,
                      stop_timeout_s=5.0)
    base = get_settings("demo", tmp_path)

    with ManagedServer(spec, model) as a, ManagedServer(spec, model) as b:
        with policy_session(_served_settings(tmp_path, sglang_managed=False, sglang_url=a.url), model) as single:
            assert [e.name for e in single] == [a.url] and single[0].concurrency == base.search.concurrency
            one = run_search(theorems, FakeEnv(roots, tr), single, CFG, tmp_path / "one.parquet")
        fan_settings = _served_settings(tmp_path, sglang_managed=False, sglang_urls=(a.url, b.url),
                                        endpoint_concurrency=2)
        with policy_session(fan_settings, model) as endpoints:
            assert [e.name for e in endpoints] == [a.url, b.url] and all(e.concurrency == 2 for e in endpoints)
            fan = run_search(theorems, FakeEnv(roots, tr), endpoints, CFG, tmp_path / "fan.parquet")
            served = [e.policy.inner.requests_sent for e in endpoints]
    assert any(r["proved"] for r in one.results) and not all(r["proved"] for r in one.results)
    assert _untimed(fan.results) == _untimed(one.results)
    fan_rows, one_rows = (pq.read_table(tmp_path / f"{n}.parquet").drop_columns(["elapsed_s"]) for n in ("fan", "one"))
    assert fan_rows.equals(one_rows)
    assert all(n > 0 for n in served)  # both servers answered


def test_managed_fan_out_one_server_per_gpu_gives_a_slow_gpu_fewer_theorems(tmp_path):
    """search.sglang_gpus: the graph launches one managed server per GPU (CUDA_VISIBLE_DEVICES,
    its own port on 127.0.0.1) through the same ManagedServer code, and the theorems come from one
    queue: the stand-in on "GPU 1" answers 0.25 s slower per request and searches fewer theorems,
    with the same trees as one server."""
    import socket

    from burnqed_assets.search.pipeline import policy_session
    from burnqed_assets.search.serving import STANDIN_LAUNCHER

    theorems, roots, tr = canned_world(12)
    model = tmp_path / "model"
    model.mkdir()
    launcher = [*STANDIN_LAUNCHER, "--device-latency", "1=0.25"]
    fan_settings = _served_settings(tmp_path, sglang_gpus=("0", "1"), endpoint_concurrency=1)
    with policy_session(fan_settings, model, launcher=launcher) as endpoints:
        assert len(endpoints) == 2 and all(e.concurrency == 1 for e in endpoints)
        fast, slow = (e.name for e in endpoints)
        assert all(e.name.startswith("http://127.0.0.1:") and e.spec.url == e.name for e in endpoints)
        fan = run_search(theorems, lambda: FakeEnv(roots, tr), endpoints, CFG, tmp_path / "fan.parquet")
    logs = {p.read_text() for p in fan_settings.paths.server_logs.glob("*.log")}
    assert any("CUDA_VISIBLE_DEVICES=0, /generate latency 0.000s" in t for t in logs)
    assert any("CUDA_VISIBLE_DEVICES=1, /generate latency 0.250s" in t for t in logs)
    for url in (fast, slow):  # both servers stopped with the session
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1]))) != 0

    with policy_session(_served_settings(tmp_path / "one"), model, launcher=STANDIN_LAUNCHER) as single:
        assert len(single) == 1
        one = run_search(theorems, FakeEnv(roots, tr), single, CFG, tmp_path / "one.parquet")
    assert sum(fan.endpoint_theorems.values()) == 12
    assert 0 < fan.endpoint_theorems[slow] < fan.endpoint_theorems[fast], fan.endpoint_theorems
    assert _untimed(fan.results) == _untimed(one.results)
    fan_rows, one_rows = (pq.read_table(tmp_path / f"{n}.parquet").drop_columns(["elapsed_s"]) for n in ("fan", "one"))
    assert fan_rows.num_rows > 0 and fan_rows.equals(one_rows)
