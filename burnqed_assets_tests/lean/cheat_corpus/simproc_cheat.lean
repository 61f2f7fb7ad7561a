-- rule: macro
-- simproc registers meta code that rewrites during simp.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

simproc cheat (_ < _) := fun _ => return .done { expr := Lean.mkConst ``True }

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  simp
