-- rule: attribute
-- @[macro …] re-expands an existing tactic.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

@[macro Lean.Parser.Tactic.tacticRfl] def m : Lean.Macro := fun _ => `(tactic| trivial)

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
