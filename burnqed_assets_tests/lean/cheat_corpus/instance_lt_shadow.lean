-- rule: core_instance
-- LT ℝ redefined: 0 < x ^ 2 becomes True.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

instance (priority := high) : LT ℝ := ⟨fun _ _ => True⟩

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  trivial
