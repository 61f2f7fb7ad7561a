-- rule: core_instance
-- A later Add ℝ instance makes + in the statement mean something else.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

instance (priority := high) cheatAdd : Add ℝ := ⟨fun _ _ => 1⟩

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
