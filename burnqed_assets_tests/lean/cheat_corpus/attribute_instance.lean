-- rule: attribute
-- attribute [instance] turns a def into an instance.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

def myPow : HPow ℝ ℕ ℝ := ⟨fun _ _ => 1⟩
attribute [instance 10000] myPow

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  norm_num
