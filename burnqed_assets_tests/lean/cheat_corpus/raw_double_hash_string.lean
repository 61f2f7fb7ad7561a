-- rule: sorry
-- r##"…"##: a quote-hash inside does not end it, quote-hash-hash does.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

def p : String := r##"a "# b\"##

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  exact sorry -- "
