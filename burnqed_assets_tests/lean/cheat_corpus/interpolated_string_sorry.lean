-- rule: interpolation
-- s!"…{e}…" runs e: a plain-string reading would hide the sorry inside.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

def s : String := s!"{(fun _ => "x") sorry}"

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
