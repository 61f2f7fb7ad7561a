"""The re-run comparison used by CI: timings may differ, nothing else may."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from burnqed_assets.reports.rerun_compare import compare_roots, main


def _root(tmp_path, name, metric=0.5, elapsed=1.0, tactic="simp", report="# Report\nrate 0.5\n"):
    root = tmp_path / name
    (root / "evals").mkdir(parents=True)
    (root / "trajectories").mkdir()
    (root / "evals" / "metrics.json").write_text(json.dumps(
        {"centroid_l2": metric, "seconds": elapsed * 3, "nested": {"tokens_per_s": elapsed, "n": 3}}))
    (root / "evals" / "report.md").write_text(report)
    pq.write_table(pa.table({"theorem": ["t"], "tactic": [tactic], "elapsed_s": [elapsed]}),
                   root / "trajectories" / "search.parquet")
    (root / "model.safetensors").write_bytes(bytes([int(elapsed)]))  # weights are not compared
    return root


def test_timings_may_differ(tmp_path, capsys):
    a, b = _root(tmp_path, "a"), _root(tmp_path, "b", elapsed=2.0)
    assert list(compare_roots(a, b)) == []
    assert main([str(a), str(b)]) == 0 and "3 files compared, 0 difference(s)" in capsys.readouterr().out


def test_every_other_difference_is_reported(tmp_path):
    a = _root(tmp_path, "a")
    diffs = list(compare_roots(a, _root(tmp_path, "b", metric=0.6)))
    assert diffs == ["evals/metrics.json: $.centroid_l2: 0.5 != 0.6"]
    diffs = list(compare_roots(a, _root(tmp_path, "c", tactic="ring")))
    assert diffs and diffs[0].startswith("trajectories/search.parquet: row 0: $.tactic")
    diffs = list(compare_roots(a, _root(tmp_path, "d", report="# Report\nrate 0.6\n")))
    assert diffs == ["evals/report.md: line 2: 'rate 0.5' != 'rate 0.6'"]
    e = _root(tmp_path, "e")
    (e / "evals" / "extra.json").write_text("{}")
    assert list(compare_roots(a, e)) == ["evals/extra.json: only under B"]
    assert main([str(a), str(e)]) == 1


def test_bookkeeping_and_set_ordered_lists_are_not_results(tmp_path):
    """The reuse cache names its run, the SFT resume key holds weights' mtime, PEFT writes
    target_modules from a set, and HF model cards list tags from a set: none is a result."""
    a, b = _root(tmp_path, "a"), _root(tmp_path, "b")
    for root, run, order, tags in ((a, "run-1", ["q_proj", "v_proj"], "- sft\n- trl\n"),
                                   (b, "run-2", ["v_proj", "q_proj"], "- trl\n- sft\n")):
        (root / ".fingerprints").mkdir()
        (root / ".fingerprints" / "clean_pool.json").write_text(json.dumps({"run_id": run}))
        (root / "checkpoints" / "lora").mkdir(parents=True)
        (root / "checkpoints" / "lora" / "run_fingerprint.json").write_text(json.dumps({"fingerprint": run}))
        (root / "checkpoints" / "lora" / "adapter_config.json").write_text(json.dumps({"target_modules": order}))
        (root / "checkpoints" / "lora" / "README.md").write_text(tags)
    assert list(compare_roots(a, b)) == []
    (b / "checkpoints" / "lora" / "adapter_config.json").write_text(json.dumps({"target_modules": ["q_proj"]}))
    diffs = list(compare_roots(a, b))  # a different set still is a difference
    assert len(diffs) == 1 and diffs[0].startswith("checkpoints/lora/adapter_config.json: $.target_modules")


def test_runs_in_different_places_compare_by_relative_paths(tmp_path, capsys):
    """Two runs from different data roots and checkouts: a path to the run's own root or to its
    own checkout is the same path; a path that points elsewhere is still a difference."""
    a, b = _root(tmp_path, "a"), _root(tmp_path, "b")
    repo_a, repo_b = tmp_path / "clone-a", tmp_path / "clone-b"
    for root, repo in ((a, repo_a), (b, repo_b)):
        (root / "evals" / "paths.json").write_text(json.dumps(
            {"adapter": f"{root}/checkpoints/lora", "input": f"{repo}/data/demo/goedel.jsonl"}))
    assert list(compare_roots(a, b)) == ["evals/paths.json: $.input: "
                                         f"'{repo_a}/data/demo/goedel.jsonl' != '{repo_b}/data/demo/goedel.jsonl'"]
    assert list(compare_roots(a, b, [(str(repo_a), str(repo_b))])) == []
    assert main([str(a), str(b), "--alias", f"{repo_a}={repo_b}"]) == 0
    (b / "evals" / "paths.json").write_text(json.dumps(
        {"adapter": f"{a}/checkpoints/lora", "input": f"{repo_b}/data/demo/goedel.jsonl"}))
    diffs = list(compare_roots(a, b, [(str(repo_a), str(repo_b))]))  # B points into A's root
    assert len(diffs) == 1 and diffs[0].startswith("evals/paths.json: $.adapter")


def test_a_copied_run_compares_through_the_root_it_ran_in(tmp_path):
    """CI compares a copy of the browser test's run, whose files point at the root it ran in
    (inside its own checkout), with a run whose root lies outside its checkout."""
    ran_in, copy, b = tmp_path / "clone-a" / "data" / "demo", tmp_path / "kept", _root(tmp_path, "b")
    a = _root(tmp_path, "kept")
    for root, points_at in ((a, ran_in), (b, b)):
        (root / "evals" / "paths.json").write_text(json.dumps({"adapter": f"{points_at}/checkpoints/lora"}))
    assert list(compare_roots(copy, b)) != []
    assert list(compare_roots(copy, b, [(str(ran_in), str(b)), (str(tmp_path / "clone-a"), str(tmp_path))])) == []
