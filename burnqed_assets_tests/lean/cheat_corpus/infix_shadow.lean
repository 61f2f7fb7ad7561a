-- rule: notation
-- infixl rebinds <.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

local infixl:50 " < " => fun (_ _ : ℝ) => True

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  trivial
