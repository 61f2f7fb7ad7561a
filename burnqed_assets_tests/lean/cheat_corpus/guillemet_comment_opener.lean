-- rule: eval
-- «a/-» is an identifier: its /- opens no comment.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

def «a/-» : ℕ := 1
#eval IO.println "pwned"
def «b-/» : ℕ := 2

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
