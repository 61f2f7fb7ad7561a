-- rule: meta_code
-- IO in a proof file.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

def leak : IO Unit := IO.FS.writeFile "/tmp/pwned" "x"

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  positivity
