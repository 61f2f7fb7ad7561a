"""The M.6 / M.8 / M.9 / M.10 data path gives the bytes the DuckDB path before it gave.

`legacy_data_path` is that path, frozen. Each test runs both on the same input and compares
every file byte for byte and every returned count: realistic synthetic pairs (the data
benchmark's generator, mostly unique states, with contaminated, malformed and duplicate lines),
hand-made rows at the edges of the rules (control characters, DuckDB's trim, prefixes,
benchmark names, blank tactics), and the shipped demo traces. The readers' two ways in (the
`data.pairs` index, the line-by-line parse of a file without one) and the sweep's two ways (the
Python sweep, DuckDB's line-checked sweep) are each compared too.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from burnqed_assets.data import io as data_io
from burnqed_assets.data import pairs as pairs_mod
from burnqed_assets.data.exploration import explore
from burnqed_assets.data.integrity import build_clean_pool, build_clean_pool_duckdb
from burnqed_assets.data.lean_github import filter_lean_github
from burnqed_assets.data.sft import Statement, build_contrastive_pool, build_sft_dataset, verify_split
from burnqed_assets.settings import DEMO_INPUTS

REPO = Path(__file__).resolve().parents[2]


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


legacy = _module("legacy_data_path", Path(__file__).with_name("legacy_data_path.py"))


def _generator():
    return _module("bench_data_pipeline", REPO / "benchmarks" / "data_pipeline.py").generate


def _write(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


# every control character, DuckDB's trim set and other escapes, in states, tactics and names
_ODD = "".join(chr(i) for i in range(32)) + "\x7f\u2028\u2029\u00a0\u3000\ufeff\\\"/é⊢😀"


def _edge_rows() -> list[dict]:
    def p(theorem, state, tactic, depth=0, source="goedel_workbook", state_after=None):
        return {"theorem": theorem, "state": state, "tactic": tactic, "state_after": state_after, "depth": depth,
                "source": source}

    rows = [
        p("goedel::odd", f"x : ℝ\n⊢ {_ODD}", f"simp [{_ODD}]", state_after=_ODD),
        p("goedel::odd", f"h : {_ODD}\n⊢ p", "\u3000 nlinarith [h]", depth=1),
        p("goedel::odd", "⊢ q", "\tintro x", depth=2),
        p("goedel::odd", "⊢ r", "(config := {}) simp", depth=3),
        p("goedel::odd", "⊢ s\x0b", "\x0bexact h", depth=4),
        p("goedel::trim", "\u3000", "rfl"),  # DuckDB's blank() needs a leading ' '
        p("goedel::trim2", " \u3000 ", "rfl"),  # blank
        p("goedel::trim3", " \u2003no goals ⊢", "rfl"),  # no_goals after DuckDB's ltrim
        p("goedel::trim4", "\tno goals ⊢", "rfl"),  # a tab is not trimmed: not no_goals
        p("goedel::blank_tac", "⊢ p", " \u3000"),  # empty_tactic
        p("goedel::blank_tac2", "⊢ p", "\u3000"),  # not blank for DuckDB: kept
        p("goedel::dup", "⊢ p", "simp"),
        p("goedel::dup", "⊢ p", "simp"),  # exact copy
        p("goedel::dup", "⊢ p", "simp", depth=None),  # the same pair (depth null = 0)
        p("goedel::dup", "⊢ p", "simp", depth=1),  # not a copy: another depth
        p("goedel::axioms", "⊢ Decidable.decide p ∧ native_decide ∧ ofReduceBool", "decide", depth=0),
        p("goedel::axioms", "⊢ p", "exact Decidable.decide", depth=1),
        p("goedel::native", "\native_decide ⊢ p", "rfl"),  # '\n' + 'ative_decide': not native_decide
        p("goedel::sorryAx", "h : sorryAx ⊢ p", "rfl"),
        p("goedel::sorry_state", "⊢ p", "intro h"),
        p("goedel::sorry_state", "x : sorry\n⊢ p", "rfl", depth=1),
        p("goedel::admit", "⊢ p", "admit"),
        p("goedel::cheat", "⊢ p", "exact cheat_lemma"),
        p("goedel::no_src", "⊢ p", "rfl", source=None),
        p("goedel::no_depth", "⊢ p", "rfl", depth=None),
        p("goedel::deep", "⊢ d0", "a", depth=0),
        p("goedel::deep", "⊢ d5", "b", depth=5),
        p("goedel::deep", "⊢ d-1", "c", depth=-1),
        p("goedel::deep", "⊢ d0 again", "d", depth=0),
        p("goedel::big", "⊢ big", "e", depth=10**8),  # the old root-state key overflowed beyond ~9e8
        p("lean_workbook_unprefixed", "⊢ p", "rfl", depth=3),
        p("goedel::mathd_algebra_478", "⊢ bench", "norm_num", depth=3),
        p("goedel::Foo.amc12_2000_p1", "⊢ bench2", "norm_num", depth=4),
        p("goedel::trailing.", "⊢ dot", "norm_num", depth=3),
        p("goedel::contam_decon", "⊢ decon", "norm_num", depth=3),
        p("goedel::only_malformed", "no turnstile here", "rfl"),
        p("goedel::shared", "⊢ shared", "simp"),  # also a GitHub pair below
        p("goedel::q\"uote\\", "⊢ qq", "rfl", depth=3),
    ]
    rows += [p(f"goedel::many{k}", f"x : ℕ\n⊢ x + {k} = {k} + x", "omega" if k % 3 else "ring_nf", depth=k % 6)
             for k in range(60)]
    return rows


def _edge_github() -> list[dict]:
    def g(name, state, tactic, file_path="Mathlib/A.lean"):
        return {"url": "u", "commit": "c", "file_path": file_path, "full_name": name, "start": [1, 1],
                "end": [2, 1], "tactic": tactic, "state_before": state, "state_after": "no goals"}

    rows = [g("Mathlib.shared", "⊢ shared", "simp"),  # the Goedel pair's copy, another theorem
            g("Mathlib.odd", f"⊢ {_ODD}", f"simp [{_ODD}]"),
            g("Mathlib.blank", "⊢ p", "  "),
            g("Mathlib.Foo.mathd_algebra_478", "⊢ q", "ring"),
            g("github::Mathlib.prefixed", "⊢ r", "exact h"),
            g("Mathlib.sorry_state", "h : sorry\n⊢ p", "exact h"),
            g("Mathlib.long", "x" * 5000 + "⊢", "rfl"),
            g("Mathlib.nogoals", "no goals", "rfl")]
    rows += [g(f"Mathlib.L{k}", f"n : ℕ\n⊢ f {k} = g {k}", ["rfl", "simp", "decide", "omega", "aesop"][k % 5])
             for k in range(80)]
    return rows


def _same_files(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _index_arrays(jsonl: Path) -> dict:
    with np.load(pairs_mod.index_path(jsonl)) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    meta.pop("mtime_ns")
    return {"meta": meta, **arrays}


def _same_pool_in_parts(traced: Path, out: Path, expected: dict) -> None:
    whole = _index_arrays(out / "clean.jsonl")
    for workers, block_bytes in ((2, 4096), (3, 700)):
        dest = out / f"clean_w{workers}.jsonl"
        assert build_clean_pool(traced, dest, workers=workers, block_bytes=block_bytes).as_dict() == expected
        assert dest.read_bytes() == (out / "clean.jsonl").read_bytes()
        parted = _index_arrays(dest)
        assert parted.keys() == whole.keys()
        for key, value in whole.items():
            assert np.array_equal(parted[key], value) if key != "meta" else parted[key] == value, key


def _run_both(tmp_path: Path, traced: Path, github: Path, benchmark: set[str], contaminated: list[str],
              statements: dict[str, Statement]):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    # M.6
    ref = legacy.build_clean_pool(traced, old / "clean.jsonl")
    res = build_clean_pool(traced, new / "clean.jsonl")
    assert res.as_dict() == ref.as_dict()
    duck_res = build_clean_pool_duckdb(traced, new / "clean_duck.jsonl")
    assert duck_res.as_dict() == ref.as_dict()
    assert (new / "clean_duck.jsonl").read_bytes() == (old / "clean.jsonl").read_bytes()
    # the sweep split over forked workers and small blocks: the same pool, report and index
    _same_pool_in_parts(traced, new, ref.as_dict())
    # M.9
    ref_gh = legacy.filter_lean_github(github, old / "gh.jsonl", seed=3, trivial_keep_rate=0.3)
    res_gh = filter_lean_github(github, new / "gh.jsonl", seed=3, trivial_keep_rate=0.3)
    assert res_gh == ref_gh
    _same_files(old, new, ["clean.jsonl", "gh.jsonl"])
    # M.8
    ref_report, ref_arrays = legacy.explore(old / "clean.jsonl", ref.as_dict(), contrastive_min_theorems=5)
    report = explore(new / "clean.jsonl", res.as_dict(), contrastive_min_theorems=5)
    assert report.as_dict() == ref_report
    assert json.dumps(report.as_dict()) == json.dumps(ref_report)  # same key order, same floats
    assert np.array_equal(report.proof_lengths, ref_arrays["proof_lengths"])
    assert np.array_equal(report.max_depths, ref_arrays["max_depths"])
    # M.10
    for seed, fraction in ((42, 0.05), (7, 0.3)):
        out_old, out_new = old / f"sft{seed}", new / f"sft{seed}"
        ref_stats = legacy.build_sft_dataset(old / "clean.jsonl", old / "gh.jsonl", out_old, seed=seed,
                                             val_fraction=fraction, benchmark=benchmark, contaminated=contaminated)
        stats = build_sft_dataset(new / "clean.jsonl", new / "gh.jsonl", out_new, seed=seed, val_fraction=fraction,
                                  benchmark=benchmark, contaminated=contaminated)
        assert stats.as_dict() == ref_stats
        _same_files(out_old, out_new, ["train.jsonl", "val.jsonl", "stats.json"])
        for bench in (benchmark, None, {"amc12_2000_p1"}):
            ref_v = legacy.verify_split(out_old, bench)
            ref_v["bad_format_examples"] = [e.replace(str(out_old), str(out_new)) for e in ref_v["bad_format_examples"]]
            assert verify_split(out_new, bench).as_dict() == ref_v  # the record, or a re-read for another set
            assert verify_split(out_new, bench, reread=True).as_dict() == ref_v
    old_statements = {k: {"formal_statement": v.formal_statement, "header": v.header} for k, v in statements.items()}
    for min_theorems in (3, 10_000):
        ref_info = legacy.build_contrastive_pool(old / "clean.jsonl", old / "pool.json", min_theorems=min_theorems,
                                                 statements=old_statements, benchmark=benchmark,
                                                 contaminated=contaminated)
        info = build_contrastive_pool(new / "clean.jsonl", new / "pool.json", min_theorems=min_theorems,
                                      statements=statements, benchmark=benchmark, contaminated=contaminated)
        assert dataclasses.asdict(info) == ref_info
        _same_files(old, new, ["pool.json"])
    # the readers without the index (a file from an older version, or edited): parsed, same bytes
    for name in ("clean.jsonl", "gh.jsonl"):
        pairs_mod.index_path(new / name).unlink()
    assert not pairs_mod.read_pairs(new / "clean.jsonl").indexed
    report2 = explore(new / "clean.jsonl", res.as_dict(), contrastive_min_theorems=5)
    assert report2.as_dict() == ref_report
    build_sft_dataset(new / "clean.jsonl", new / "gh.jsonl", new / "sft_parsed", benchmark=benchmark,
                      contaminated=contaminated)
    _same_files(old / "sft42", new / "sft_parsed", ["train.jsonl", "val.jsonl", "stats.json"])
    build_contrastive_pool(new / "clean.jsonl", new / "pool2.json", min_theorems=3, statements=statements,
                           benchmark=benchmark, contaminated=contaminated)
    legacy.build_contrastive_pool(old / "clean.jsonl", old / "pool2.json", min_theorems=3, statements=old_statements,
                                  benchmark=benchmark, contaminated=contaminated)
    _same_files(old, new, ["pool2.json"])
    return res


def test_realistic_pairs_give_the_same_bytes(tmp_path):
    traced, github, rates = _generator()(tmp_path, 4000, seed=5)
    assert rates["distinct_states"] > 0.9
    res = _run_both(tmp_path, traced, github, benchmark={"lean_workbook_17", "lemma_40"},
              contaminated=["goedel::lean_workbook_3", "github::Mathlib.Foo.lemma_7"],
              statements={"lean_workbook_5": Statement("theorem lean_workbook_5 : p := by", "import Mathlib\n")})
    assert res.contaminated_pairs and res.duplicate_pairs and sum(res.malformed.values())


def test_edge_cases_give_the_same_bytes(tmp_path):
    traced = _write(tmp_path / "traced.jsonl", _edge_rows())
    github = _write(tmp_path / "github.jsonl", _edge_github())
    res = _run_both(tmp_path, traced, github, benchmark={"mathd_algebra_478", "amc12_2000_p1", ""},
              contaminated=["goedel::contam_decon"],
              statements={"deep": Statement(f"theorem deep {_ODD} := by", f"import Mathlib\n-- {_ODD}\n")})
    # every rule fired on the edge rows
    assert res.contaminated_theorems == 4 and res.duplicate_pairs == 2 and all(res.malformed.values())
    assert set(res.suspicious_axiom_mentions) == {"sorryAx", "Decidable.decide", "native_decide", "ofReduceBool"}


def test_demo_traces_give_the_same_bytes(tmp_path):
    traced = DEMO_INPUTS / "traced" / "handwritten_deep_traces.jsonl"
    github = next(p for p in sorted((DEMO_INPUTS / "lean_github").glob("*.jsonl")))
    _run_both(tmp_path, traced, github, benchmark=set(), contaminated=[], statements={})


def test_a_file_with_a_bad_line_takes_duckdbs_line_checked_sweep(tmp_path):
    rows = _edge_rows()
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines[3] = '{"theorem": "goedel::x", "state": "⊢ p", "tactic": 5}'  # a mistyped field
    lines.insert(7, "")  # a blank line
    traced = _write(tmp_path / "traced.jsonl", lines)
    ref = legacy.build_clean_pool(traced, tmp_path / "old.jsonl")
    res = build_clean_pool(traced, tmp_path / "new.jsonl")
    assert res.bad_lines == 1 and res.bad_line_examples[0].startswith(f"{traced}:4:")
    assert res.as_dict() == ref.as_dict()
    assert (tmp_path / "new.jsonl").read_bytes() == (tmp_path / "old.jsonl").read_bytes()
    assert pairs_mod.read_pairs(tmp_path / "new.jsonl").indexed  # the DuckDB sweep writes the index too


def test_every_control_character_is_written_as_duckdb_writes_it(tmp_path):
    """`json_bytes` (orjson + DuckDB's upper-case escapes) equals DuckDB's COPY ... (FORMAT JSON)."""
    from burnqed_assets.data import duck

    text = "".join(chr(i) for i in range(0x80)) + "\u2028\u2029é⊢😀\u0085\ufeff"
    con = duck.connect(threads=1)
    con.execute("CREATE OR REPLACE TEMP TABLE esc (s VARCHAR, d BIGINT, n VARCHAR)")
    con.execute("INSERT INTO esc VALUES (?, 3, NULL), (?, -1, 'x')", [text, text[::-1]])
    con.execute(f"COPY esc TO {duck.sql_str(str(tmp_path / 'esc.json'))} (FORMAT JSON)")
    expected = (tmp_path / "esc.json").read_bytes()
    ours = pairs_mod.json_bytes({"s": text, "d": 3, "n": None}) + b"\n" + \
        pairs_mod.json_bytes({"s": text[::-1], "d": -1, "n": "x"}) + b"\n"
    assert ours == expected
    assert pairs_mod.text_of(pairs_mod.json_text(text)) == text


def test_the_index_goes_stale_after_an_edit(tmp_path):
    traced = _write(tmp_path / "traced.jsonl", _edge_rows())
    build_clean_pool(traced, tmp_path / "clean.jsonl")
    table = pairs_mod.read_pairs(tmp_path / "clean.jsonl")
    assert table.indexed
    lines = (tmp_path / "clean.jsonl").read_bytes().splitlines()
    assert [table.state_json(i) for i in range(len(table))] == \
        [pairs_mod.json_text(json.loads(line)["state"]) for line in lines]
    assert [table.tactic_json(i) for i in range(len(table))] == \
        [pairs_mod.json_text(json.loads(line)["tactic"]) for line in lines]
    # an edited file (even with its old mtime) no longer matches the index: it is parsed
    st = (tmp_path / "clean.jsonl").stat()
    with open(tmp_path / "clean.jsonl", "ab") as fh:
        fh.write(b'{"theorem": "goedel::new", "state": "\\u22a2 p", "tactic": "rfl"}\n')
    os.utime(tmp_path / "clean.jsonl", ns=(st.st_atime_ns, st.st_mtime_ns))
    edited = pairs_mod.read_pairs(tmp_path / "clean.jsonl")
    assert not edited.indexed and len(edited) == len(table) + 1
    assert edited.state_json(len(table)) == "⊢ p".encode()
    # and a bad line is named by its file:line
    with open(tmp_path / "clean.jsonl", "ab") as fh:
        fh.write(b"{broken\n")
    from burnqed_assets.data.io import BadInputError

    with pytest.raises(BadInputError, match=rf"clean\.jsonl:{len(table) + 2}: malformed JSON"):
        pairs_mod.read_pairs(tmp_path / "clean.jsonl")


def test_a_bad_line_in_a_workers_part_takes_the_line_checked_sweep(tmp_path):
    traced, _, _ = _generator()(tmp_path, 600, seed=2)
    lines = traced.read_bytes().splitlines(keepends=True)
    lines[-40] = b'{"theorem": "goedel::x", "state": 7, "tactic": "rfl"}\n'  # in the last part
    traced.write_bytes(b"".join(lines))
    ref = legacy.build_clean_pool(traced, tmp_path / "old.jsonl")
    res = build_clean_pool(traced, tmp_path / "new.jsonl", workers=2, block_bytes=2048)
    assert res.bad_lines == 1 and res.bad_line_examples[0].startswith(f"{traced}:{len(lines) - 39}:")
    assert res.as_dict() == ref.as_dict()
    assert (tmp_path / "new.jsonl").read_bytes() == (tmp_path / "old.jsonl").read_bytes()


def test_a_hash_match_that_is_not_a_copy_is_never_dropped(tmp_path, monkeypatch):
    """Pair hashes that collide all the time: every match is checked against the earlier line,
    and a file with a match that is not a copy is swept by DuckDB (same pool, same report)."""
    from burnqed_assets.data import integrity

    traced, _, _ = _generator()(tmp_path, 800, seed=4)
    ref = legacy.build_clean_pool(traced, tmp_path / "old.jsonl")
    real = integrity._pair_hashes
    monkeypatch.setattr(integrity, "_pair_hashes", lambda *cols: real(*cols) % 7)  # forked workers see it too
    fallbacks = []
    monkeypatch.setattr(integrity, "build_clean_pool_duckdb",
                        lambda *a, **k: fallbacks.append(1) or build_clean_pool_duckdb(*a, **k))
    for workers in (1, 2):
        res = build_clean_pool(traced, tmp_path / f"new{workers}.jsonl", workers=workers, block_bytes=4096)
        assert res.as_dict() == ref.as_dict() and res.duplicate_pairs > 0
        assert (tmp_path / f"new{workers}.jsonl").read_bytes() == (tmp_path / "old.jsonl").read_bytes()
    assert len(fallbacks) == 2
    # hashes that only match true copies: the Python sweep confirms them and keeps its result
    monkeypatch.setattr(integrity, "_pair_hashes", real)
    res = build_clean_pool(traced, tmp_path / "new.jsonl", workers=2, block_bytes=4096)
    assert len(fallbacks) == 2 and res.as_dict() == ref.as_dict()


def test_the_sweep_uses_a_worker_per_cpu_only_for_a_large_file(monkeypatch):
    from burnqed_assets.data import integrity

    monkeypatch.setattr(data_io, "usable_cpus", lambda: 4)
    per = integrity.SWEEP_BYTES_PER_WORKER
    assert integrity.sweep_workers(0) == 1
    assert integrity.sweep_workers(per - 1) == 1
    assert integrity.sweep_workers(2 * per) == 2
    assert integrity.sweep_workers(100 * per) == 4


def test_a_split_written_by_several_processes_has_the_same_bytes(tmp_path, monkeypatch):
    """train/val cut into shares, each built and written at its offset by a forked process."""
    from burnqed_assets.data import sft

    traced, github, _ = _generator()(tmp_path, 3000, seed=6)
    legacy.build_clean_pool(traced, tmp_path / "clean.jsonl")
    build_clean_pool(traced, tmp_path / "new_clean.jsonl")
    filter_lean_github(github, tmp_path / "gh.jsonl")
    legacy.build_sft_dataset(tmp_path / "clean.jsonl", tmp_path / "gh.jsonl", tmp_path / "old")
    monkeypatch.setattr(data_io, "usable_cpus", lambda: 3)
    monkeypatch.setattr(sft, "_WRITE_BYTES_PER_WORKER", 10_000)
    forks = []
    real = sft.run_forked
    monkeypatch.setattr(sft, "run_forked", lambda tasks: forks.append(len(tasks)) or real(tasks))
    build_sft_dataset(tmp_path / "new_clean.jsonl", tmp_path / "gh.jsonl", tmp_path / "new")
    assert forks == [3, 3]  # train and val, three shares each
    _same_files(tmp_path / "old", tmp_path / "new", ["train.jsonl", "val.jsonl", "stats.json"])
    assert verify_split(tmp_path / "new", reread=True) == verify_split(tmp_path / "new")


def test_a_failed_forked_writer_fails_the_step(tmp_path):
    from burnqed_assets.data.io import run_forked

    def fail() -> None:
        raise SystemExit(3)

    with pytest.raises(RuntimeError, match=r"1 of 2 forked worker\(s\) failed \(exit codes \[3\]\)"):
        run_forked([lambda: None, fail, lambda: None])


def test_a_sweep_worker_that_dies_fails_the_step_and_writes_nothing(tmp_path, monkeypatch):
    from burnqed_assets.data import integrity

    traced, _, _ = _generator()(tmp_path, 600, seed=3)
    parent, real = os.getpid(), integrity._scan_block

    def dying(block: bytes, offset: int):
        if os.getpid() != parent:
            os._exit(9)  # a worker killed mid-part (out of memory, say)
        return real(block, offset)

    monkeypatch.setattr(integrity, "_scan_block", dying)
    with pytest.raises(RuntimeError, match=r"worker died \(exit code 9\)"):
        build_clean_pool(traced, tmp_path / "clean.jsonl", workers=2, block_bytes=4096)
    assert not (tmp_path / "clean.jsonl").exists()
