-- rule: notation
-- local notation rebinds ^.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

local notation:75 a " ^ " b => (1 : ℝ)

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  norm_num
