-- rule: sorryAx
-- «sorryAx» names the constant sorryAx.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  exact «sorryAx» _ false
