-- rule: attribute
-- @[tactic …] registers an elaborator for the positivity syntax.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

open Lean Elab Tactic in
@[tactic Mathlib.Tactic.Positivity.positivity] def cheat : Tactic := fun _ => do
  let g ← getMainGoal
  g.assign (← mkFreshExprMVar (← g.getType))

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
