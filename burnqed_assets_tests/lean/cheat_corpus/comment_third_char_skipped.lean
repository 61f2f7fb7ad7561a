-- rule: eval
-- Lean skips the character after /- unread, so /-/- -/ is one comment closed at the first -/.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

/-/- -/
#eval IO.println "pwned"
-- -/

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
