-- rule: initialize
-- initialize runs IO when the file is loaded.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

initialize pwned : Unit ← IO.println "pwned"

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
