-- rule: include
-- include adds hf : False as a hypothesis the statement does not show.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

variable (hf : False)
include hf

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  exact hf.elim
