-- rule: set_option
-- warningAsError off and unknown options: not in the allowed list.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

set_option warningAsError false in
theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
