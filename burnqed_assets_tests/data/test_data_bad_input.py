"""Bad input is reported where it enters, with file:line: invalid UTF-8 next to Lean's unicode,
wrong JSON types (depth as a string, tactic as a number), never silently converted."""

from __future__ import annotations

import json

import pytest

from burnqed_assets.data import duck
from burnqed_assets.data.io import BadInputError, LineReport, iter_jsonl, read_json
from burnqed_assets.data.sft import PAIR_COLUMNS, PAIR_REQUIRED

GOOD = {"theorem": "goedel::a", "state": "x : ℝ\n⊢ x ≤ x", "tactic": "le_refl x", "depth": 0, "source": "goedel_workbook"}


def _lines(tmp_path, *lines: bytes):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _good(**over) -> bytes:
    return json.dumps({**GOOD, **over}, ensure_ascii=False).encode("utf-8")


def test_invalid_utf8_next_to_lean_unicode_names_file_and_line(tmp_path):
    broken = _good(state="x : ℝ\n⊢ x ≤ x").replace("≤".encode(), b"\xe2\x89")  # a cut multi-byte character
    path = _lines(tmp_path, _good(), broken, _good(theorem="goedel::b"))
    report = LineReport()
    assert [n for n, _ in iter_jsonl(path, report)] == [1, 3]
    assert [str(b) for b in report.bad] == [f"{path}:2: invalid UTF-8 (byte 0xe2 at byte column 51)"]
    with pytest.raises(BadInputError, match=r"pairs.jsonl:2: invalid UTF-8"):
        list(iter_jsonl(path))
    # the DuckDB loader (all table reads) reports the same line and loads the others
    con, report = duck.connect(), LineReport()
    assert duck.load_jsonl(con, path, "t", PAIR_COLUMNS, PAIR_REQUIRED, report) == 2
    assert [b.line for b in report.bad] == [2] and "invalid UTF-8" in report.bad[0].reason
    assert [r for (r,) in con.execute("SELECT _line FROM t ORDER BY _line").fetchall()] == [1, 3]
    with pytest.raises(BadInputError, match=r"pairs.jsonl:2: invalid UTF-8"):
        duck.load_jsonl(duck.connect(), path, "t", PAIR_COLUMNS, PAIR_REQUIRED)
    js = tmp_path / "x.json"
    js.write_bytes(b'{\n  "a": "\xff"\n}\n')
    with pytest.raises(BadInputError, match=r"x.json:2: invalid UTF-8 \(byte 0xff at byte column 9\)"):
        read_json(js)


@pytest.mark.parametrize("field,value,reason", [
    ("depth", "3", "field 'depth' is not an integer"),
    ("tactic", 5, "field 'tactic' missing or not a string"),
    ("state", ["⊢ p"], "field 'state' missing or not a string"),
])
def test_wrong_field_types_are_reported_not_converted(tmp_path, field, value, reason):
    path = _lines(tmp_path, _good(), _good(theorem="goedel::b", **{field: value}))
    con, report = duck.connect(), LineReport()
    assert duck.load_jsonl(con, path, "t", PAIR_COLUMNS, PAIR_REQUIRED, report) == 1
    assert [str(b) for b in report.bad] == [f"{path}:2: {reason}"]
    assert con.execute("SELECT theorem, depth, tactic FROM t").fetchall() == [("goedel::a", 0, "le_refl x")]


def test_clean_files_still_take_the_fast_path_with_exact_values(tmp_path):
    path = _lines(tmp_path, _good(), _good(theorem="goedel::b", depth=None, tactic='exact "q"'))
    con = duck.connect()
    assert duck.load_jsonl(con, path, "t", PAIR_COLUMNS, PAIR_REQUIRED) == 2
    assert con.execute("SELECT _line, theorem, state, tactic, depth FROM t ORDER BY _line").fetchall() == [
        (1, "goedel::a", GOOD["state"], "le_refl x", 0), (2, "goedel::b", GOOD["state"], 'exact "q"', None)]


def test_a_bad_goedel_source_row_is_reported_by_the_asset_that_reads_it(tmp_path, monkeypatch):
    import dagster as dg

    from burnqed_assets.defs import migration
    from burnqed_assets.lean import phase_m
    from burnqed_assets.resources import BurnqedConfig
    from burnqed_assets.settings import DEMO_INPUTS

    src = DEMO_INPUTS / "goedel" / "goedel_workbook_proofs.jsonl"
    bad = tmp_path / "goedel_with_bad_row.jsonl"
    lines = src.read_bytes().splitlines(keepends=True)
    bad.write_bytes(b"".join(lines[:3]) + b'{"problem_id": "x", "full_proof": \n' + b"".join(lines[3:6]))
    real = phase_m.load_goedel_source
    monkeypatch.setattr(phase_m, "load_goedel_source", lambda path, report: real(bad, report))
    result = dg.materialize([migration.goedel_source_proofs, migration.goedel_source_rows_readable],
                            resources={"burnqed": BurnqedConfig(profile="demo", data_root=str(tmp_path / "d"))},
                            raise_on_error=False)
    meta = result.asset_materializations_for_node("goedel_source_proofs")[0].metadata
    assert meta["bad_lines"].value == 1 and meta["proofs"].value == 6
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}["goedel_source_rows_readable"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert f"{bad}:4: malformed JSON" in check.description
