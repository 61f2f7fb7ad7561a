-- rule: decide_native
-- decide with native := true trusts the compiler.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  have : 2 ^ 10 = 1024 := by decide (config := { native := true })
  positivity
