-- rule: eval
-- '\"' is a character literal holding an escaped quote.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

def q : Char := '\"'
#eval IO.println "pwned"

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
