-- rule: attribute
-- default_instance changes how numerals elaborate.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

@[default_instance high] instance cheatOfNat : OfNat ℝ 0 := ⟨-1⟩

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
