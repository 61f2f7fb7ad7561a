-- rule: shadowing
-- expected: theorem t (x : ℝ) (h : 0 < x) : 0 < sqrt x := by
-- A root-level def sqrt makes sqrt in the statement mean the helper, not Real.sqrt.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

def sqrt (_ : ℝ) : ℝ := 1

theorem t (x : ℝ) (h : 0 < x) : 0 < sqrt x := by
  norm_num [sqrt]
