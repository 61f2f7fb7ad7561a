-- rule: theorem_missing
-- The file proves the statement under another name and something trivial as the last theorem.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

theorem t' (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity

theorem decoy : True := trivial
