-- rule: eval
-- A character literal '"' is not a string opener: the old stripper hid the #eval.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

def q : Char := '"'
#eval IO.FS.writeFile "/tmp/pwned" "x"

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
