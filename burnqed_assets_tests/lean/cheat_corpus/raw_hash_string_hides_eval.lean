-- rule: eval
-- r#"..."# ends at quote-hash; the backslash before it escapes nothing.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

def p : String := r#"C:\"#
#eval IO.println "pwned"

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
