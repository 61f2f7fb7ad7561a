-- rule: sorry
-- A raw string has no escapes: r"C:\" ends at the second quote, so the sorry is code.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

def path : String := r"C:\"

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  exact sorry -- "
