-- rule: statement_mismatch
-- The benchmark text is a prefix of a weaker statement (an old substring check passed it).
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 ∨ True := by
  right; trivial
