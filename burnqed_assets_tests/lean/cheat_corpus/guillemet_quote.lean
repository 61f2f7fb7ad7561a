-- rule: sorry
-- «x"» is an identifier: its quote opens no string.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

def «x"» : ℕ := 1

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  exact sorry

def «y"» : ℕ := 2
