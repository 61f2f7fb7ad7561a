-- rule: eval
-- A doc comment /-- … -/ ends at its -/; what follows is code.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

/-- helper doc "-/
#eval IO.println "pwned"

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
