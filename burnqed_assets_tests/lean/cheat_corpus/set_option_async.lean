-- rule: set_option
-- Elab.async: errors may be reported after the command's messages are collected.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

set_option Elab.async true

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
