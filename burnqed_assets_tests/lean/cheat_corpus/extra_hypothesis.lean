-- rule: statement_mismatch
-- An extra False hypothesis makes anything provable.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

theorem t (x : ℝ) (h : 0 < x) (hf : False) : 0 < x ^ 2 := by
  exact hf.elim
