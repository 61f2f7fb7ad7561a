-- rule: namespace
-- Inside a namespace the theorem is Cheat.t, not t.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

namespace Cheat

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity

end Cheat
