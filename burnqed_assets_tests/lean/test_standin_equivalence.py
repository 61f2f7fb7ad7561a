"""The REPL stand-in, through the real client and sandbox, answers exactly what the recorded
table answers in process: the demo search sees the same states, errors and verdicts it saw
when the demo used the in-process replay."""

from __future__ import annotations

import json

from burnqed_assets.lean.factory import make_lean_env, make_replay_env, replay_sources
from burnqed_assets.lean.proof_text import NO_GOALS
from burnqed_assets.settings import get_settings


def test_standin_matches_the_recorded_table_on_every_recorded_path(tmp_path):
    settings = get_settings("demo", tmp_path)
    table, env = make_replay_env(settings), make_lean_env(settings)
    rows_by_theorem: dict[str, list[dict]] = {}
    for path in replay_sources(settings)["trace_rows"]:
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            rows_by_theorem.setdefault(r["theorem"].split("::", 1)[-1], []).append(r)
    compared = 0
    try:
        for name, rows in rows_by_theorem.items():
            a, b = table.open_theorem("", name=name), env.open_theorem(f"theorem {name} : True := by", name=name)
            assert a.pp == b.pp, name
            for r in rows:  # every recorded step (and a wrong tactic) from its recorded state
                if r["depth"] == 0:
                    sa, sb = a, b
                for tactic in (r["tactic"], "simp [never_recorded_lemma]"):
                    ra, rb = table.run_tactic(sa, tactic), env.run_tactic(sb, tactic)
                    assert ra.status == rb.status, (name, tactic, ra, rb)
                    if ra.status == "open":
                        assert ra.state.pp == rb.state.pp
                    compared += 1
                ra, rb = table.run_tactic(sa, r["tactic"]), env.run_tactic(sb, r["tactic"])
                if ra.status != "open" or r.get("state_after") in (None, NO_GOALS):
                    break
                sa, sb = ra.state, rb.state
        assert compared > 300
    finally:
        env.close()
