-- rule: elab_admit
-- Lean.Elab.admitGoal closes the goal with sorry.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

open Lean Elab Tactic in
theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  run_tac do admitGoal (← getMainGoal)
