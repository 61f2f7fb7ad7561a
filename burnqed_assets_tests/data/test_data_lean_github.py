"""M.9 LEAN-GitHub filter: rules, deterministic subsampling, parquet input, github:: prefix."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from burnqed_assets.data.lean_github import filter_lean_github
from burnqed_assets.settings import DEMO_INPUTS

STATE = "n : ℕ\n⊢ n + 0 = n"


def _row(name: str, tactic: str, state: str = STATE) -> dict:
    return {"url": "u", "commit": "c", "file_path": "F.lean", "full_name": name, "start": [1, 1], "end": [2, 1],
            "tactic": tactic, "state_before": state, "state_after": "no goals"}


def _write(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")


def _read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_rule_and_prefix(tmp_path):
    src = tmp_path / "rows.jsonl"
    _write(src, [_row("A.keep", "omega"), _row("A.long", "omega", "x" * 5000 + "⊢"),
                 _row("A.nogoals", "omega", "no goals"), _row("A.noturn", "omega", "n : ℕ"),
                 _row("A.sorry", "sorry"), _row("A.admit", "exact admit"), "{broken"])
    res = filter_lean_github(src, tmp_path / "out.jsonl", max_state_chars=4096)
    out = _read(tmp_path / "out.jsonl")
    assert [r["theorem"] for r in out] == ["github::A.keep"]
    assert out[0] == {"theorem": "github::A.keep", "state": STATE, "tactic": "omega", "state_after": "no goals",
                      "depth": None, "source": "lean_github"}
    assert res.dropped == {"long_state": 1, "no_goals_state": 1, "no_turnstile": 1, "banned_tactic": 2}
    assert res.bad_lines == 1 and res.bad_line_examples[0].startswith(f"{src}:7:")


def test_trivial_subsampling_is_deterministic_and_near_the_rate(tmp_path):
    src = tmp_path / "rows.jsonl"
    _write(src, [_row(f"T.t{i}", "simp") for i in range(3000)] + [_row(f"T.n{i}", "omega") for i in range(50)])
    a = filter_lean_github(src, tmp_path / "a.jsonl", seed=7, trivial_keep_rate=0.1)
    b = filter_lean_github(src, tmp_path / "b.jsonl", seed=7, trivial_keep_rate=0.1)
    c = filter_lean_github(src, tmp_path / "c.jsonl", seed=8, trivial_keep_rate=0.1)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()
    assert a.trivial_rows == 3000 and 200 <= a.trivial_kept <= 400  # ~10 %
    assert a.kept_pairs == a.trivial_kept + 50 and b.kept_pairs == a.kept_pairs and c.trivial_kept > 0
    # the decision depends on the row, not its position: reversed input keeps the same rows
    rev = tmp_path / "rev.jsonl"
    rev.write_text("".join(reversed(src.read_text(encoding="utf-8").splitlines(keepends=True))), encoding="utf-8")
    filter_lean_github(rev, tmp_path / "r.jsonl", seed=7, trivial_keep_rate=0.1)
    assert sorted(map(json.dumps, _read(tmp_path / "r.jsonl"))) == sorted(map(json.dumps, _read(tmp_path / "a.jsonl")))


def test_parquet_directory_input(tmp_path):
    d = tmp_path / "lean_github"
    d.mkdir()
    rows = [_row("P.a", "omega"), _row("P.b", "linarith"), _row("P.c", "sorry")]
    pq.write_table(pa.Table.from_pylist(rows[:2]), d / "part-0.parquet")
    pq.write_table(pa.Table.from_pylist(rows[2:]), d / "part-1.parquet")
    res = filter_lean_github(d, tmp_path / "out.jsonl")
    assert res.input_files == 2 and res.rows_read == 3 and res.kept_pairs == 2
    assert [r["theorem"] for r in _read(tmp_path / "out.jsonl")] == ["github::P.a", "github::P.b"]


def test_demo_rows_flattened_from_real_leandojo_sample(tmp_path):
    src = DEMO_INPUTS / "lean_github" / "lean_github_rows.jsonl"
    res = filter_lean_github(src, tmp_path / "out.jsonl")
    assert res.rows_read == 35 and res.bad_lines == 0 and res.kept_pairs >= 30
