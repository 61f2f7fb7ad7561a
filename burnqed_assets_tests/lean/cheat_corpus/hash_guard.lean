-- rule: hash_command
-- #guard evaluates code.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

#guard (dbgTraceIfShared "x" true)

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
