"""Best-first proof search over a `LeanEnv` (plan Tasks 1.3, 1.4, 2.6; replaces the Rust prover-core).

One search per theorem: pop the open state with the best priority, sample
`num_candidates` tactics at `temperature`, apply each to the whole state (LeanDojo style:
a tactic acts on the state with all its goals), push the new states. Priority is the
cumulative log-prob of the tactic path (optionally divided by depth, optionally minus
λ·energy of an EBM scorer). Identical states (same pretty print) are kept once.

Budget: `max_nodes` counts tactic applications (one per distinct candidate sent to Lean;
with 16 candidates per expansion, 800 nodes ≈ 50 expansions, as the plan reasons) plus the
root; `timeout_s` bounds the wall clock. A search succeeds only when a tactic closes every
goal AND the verifier accepts the assembled proof; otherwise it keeps searching.

The whole tree is returned and turned into `TRAJECTORY_SCHEMA` rows: states on the proof
path are `positive`, every other state of a proved tree `negative` (siblings of the path are
the EBM's hard negatives), and every state of an unproved search `unknown`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from burnqed_assets.search.config import SearchConfig  # noqa: F401 - the engine's config, imported from here too

from burnqed_assets.lean.env import LeanEnv, ProofState
from burnqed_assets.search.policy import Policy, SearchInfrastructureError, dedup_candidates

log = logging.getLogger(__name__)

PROVED_STATE_PP = "no goals"  # LeanDojo's pretty print of a closed proof
# A tactic call that raises (timeout, REPL crash) counts as that tactic's error; this many in a
# row means the backend is unusable for this theorem, which then ends with stop_reason="error".
MAX_TACTIC_CRASHES_IN_A_ROW = 3


class SearchStopped(Exception):
    """Ends one theorem's search with `stop_reason` (e.g. the REPL died mid-search and its proof
    states are gone: "error"; the theorem's Lean budget ran out: "timeout"). Raised by the env
    a search runs on; never caught as one tactic's failure."""

    def __init__(self, stop_reason: str, message: str):
        super().__init__(message)
        self.stop_reason = stop_reason
        self.message = message


class EnergyScorer(Protocol):
    """EBM guidance: energies (lower = more promising) of states under a theorem's root goal."""

    def score(self, states: Sequence[str], goal: str) -> list[float]:
        ...


@dataclass(frozen=True)
class VerifyOutcome:
    ok: bool
    reason: str = ""


Verifier = Callable[[str, str, Sequence[str]], VerifyOutcome]  # (header, statement, tactics) -> verdict


@dataclass(frozen=True)
class Theorem:
    """What a search needs to open a theorem: its name, Lean statement (ending in `:= by`), header."""

    name: str
    formal_statement: str
    header: str = ""
    source: str = ""


@dataclass
class Node:
    id: int
    parent_id: int
    state: ProofState | None  # None for the closing node ("no goals")
    state_pp: str
    tactic: str
    depth: int
    llm_logprob: float
    cumulative_logprob: float
    energy: float | None
    elapsed_s: float
    proved: bool = False  # this node has no goals left
    expanded: bool = False


@dataclass
class SearchResult:
    theorem: str
    proved: bool
    proof: list[str] = field(default_factory=list)  # tactics root → end, when proved
    nodes: list[Node] = field(default_factory=list)
    expansions: int = 0
    tactic_calls: int = 0
    tactic_errors: int = 0
    tactic_crashes: int = 0
    duplicate_states: int = 0
    verify_rejections: int = 0
    elapsed_s: float = 0.0
    policy_s: float = 0.0
    lean_s: float = 0.0
    scorer_s: float = 0.0
    stop_reason: str = ""  # proved | exhausted | max_nodes | timeout | error
    error: str | None = None
    source: str = ""

    @property
    def max_depth(self) -> int:
        return max((n.depth for n in self.nodes), default=0)

    def summary(self) -> dict[str, Any]:
        """One row of per-problem results (no tree)."""
        return {
            "theorem": self.theorem, "source": self.source, "proved": self.proved,
            "proof": "\n".join(self.proof) if self.proved else None, "proof_length": len(self.proof),
            "nodes": len(self.nodes), "expansions": self.expansions, "tactic_calls": self.tactic_calls,
            "tactic_errors": self.tactic_errors, "tactic_crashes": self.tactic_crashes,
            "duplicate_states": self.duplicate_states,
            "verify_rejections": self.verify_rejections, "max_depth": self.max_depth,
            "elapsed_s": round(self.elapsed_s, 4), "policy_s": round(self.policy_s, 4),
            "lean_s": round(self.lean_s, 4), "scorer_s": round(self.scorer_s, 4),
            "stop_reason": self.stop_reason, "error": self.error,
        }


def assemble_proof(formal_statement: str, tactics: Sequence[str], indent: str = "  ") -> str:
    """The statement (ending in `:= by`) followed by the tactic path, each line indented."""
    statement = formal_statement.rstrip()
    if not statement.endswith("by"):
        statement += " := by"
    body = []
    for tactic in tactics:
        lines = tactic.splitlines() or [""]
        # keep a multi-line tactic's relative indentation
        base = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
        body.extend(indent + ln[base:] for ln in lines)
    return statement + "\n" + "\n".join(body) + "\n"


def env_check_file_verifier(env: LeanEnv) -> Verifier:
    """Fallback verifier: Lean compiles header + statement + proof with no error and no sorry."""

    def verify(header: str, statement: str, tactics: Sequence[str]) -> VerifyOutcome:
        code = (header.rstrip() + "\n\n" if header.strip() else "") + assemble_proof(statement, tactics)
        res = env.check_file(code)
        if res.error:
            return VerifyOutcome(False, f"backend error: {res.error}")
        if not res.ok or res.sorries:
            errors = [m.text for m in res.messages if m.severity == "error"][:2]
            return VerifyOutcome(False, f"rejected: sorries={res.sorries} errors={errors}")
        return VerifyOutcome(True)

    return verify


def make_verifier(env: LeanEnv, settings: Any = None) -> Verifier:
    """The Lean layer's `verify_proof` (static cheat scan, Lean's verdict, axioms within the
    allowed set, the file must prove the expected statement) on header + assembled proof."""
    allowed = getattr(getattr(settings, "lean", None), "allowed_axioms", None)
    return ProofVerifierFactory(tuple(allowed) if allowed else None)(env)


@dataclass(frozen=True)
class ProofVerifierFactory:
    """Picklable `env -> Verifier` for pool workers (a Ray actor builds the verifier on its own
    warm env): the Lean layer's `verify_proof` with `allowed_axioms` (None: its defaults)."""

    allowed_axioms: tuple[str, ...] | None = None

    def __call__(self, env: LeanEnv) -> Verifier:
        from burnqed_assets.lean.verify import verify_proof

        kwargs: dict[str, Any] = {"allowed_axioms": self.allowed_axioms} if self.allowed_axioms else {}

        def verify(header: str, statement: str, tactics: Sequence[str]) -> VerifyOutcome:
            code = (header.rstrip() + "\n\n" if header.strip() else "") + assemble_proof(statement, tactics)
            verdict = verify_proof(code, env, expected_statement=statement, **kwargs)
            return VerifyOutcome(bool(verdict.ok), verdict.reason)

        return verify


def _priority(cum_logprob: float, depth: int, energy: float | None, cfg: SearchConfig) -> float:
    score = cum_logprob / max(depth, 1) if cfg.length_normalised else cum_logprob
    if energy is not None:
        score -= cfg.ebm_lambda * energy
    return score


def search_theorem(theorem: Theorem, env: LeanEnv, policy: Policy, cfg: SearchConfig,
                   scorer: EnergyScorer | None = None, verifier: Verifier | None = None,
                   clock: Callable[[], float] = time.perf_counter, prepare_header: bool = True) -> SearchResult:
    """Best-first search of one theorem. Never raises for a Lean failure: the result carries
    `stop_reason="error"` and the message, with the tree built so far. A
    `SearchInfrastructureError` (policy or encode server down) propagates. `prepare_header=False`:
    the caller (a warm pool worker) already readied the header env and started the theorem's clock."""
    prepare = getattr(env, "prepare_header", None) if prepare_header else None
    if callable(prepare):
        # A REPL env elaborates the header (`import Mathlib`) before the theorem's clock starts.
        try:
            prepare(theorem.header)
        except Exception as exc:  # noqa: BLE001 - open_theorem reports it on the clock below
            log.warning("%s: header preparation failed: %s", theorem.name, exc)
    t0 = clock()
    result = SearchResult(theorem=theorem.name, proved=False, source=theorem.source)
    verifier = verifier or env_check_file_verifier(env)
    try:
        _search(theorem, env, policy, cfg, scorer, verifier, clock, t0, result)
    except SearchInfrastructureError:
        raise  # the policy or encode server is down: stop the run, do not record this theorem
    except SearchStopped as stop:
        result.stop_reason = stop.stop_reason
        result.error = stop.message[:2000]
        log.warning("search %s stopped (%s): %s", theorem.name, stop.stop_reason, stop.message[:300])
    except Exception as exc:  # noqa: BLE001 - one theorem's failure never stops a run
        result.stop_reason = "error"
        result.error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("search %s failed: %s", theorem.name, result.error)
    result.elapsed_s = clock() - t0
    return result


def _search(theorem: Theorem, env: LeanEnv, policy: Policy, cfg: SearchConfig, scorer: EnergyScorer | None,
            verifier: Verifier, clock: Callable[[], float], t0: float, result: SearchResult) -> None:
    t = clock()
    root_state = env.open_theorem(theorem.formal_statement, theorem.header)
    result.lean_s += clock() - t
    goal = root_state.pp
    root_energy = None
    if scorer is not None:
        t = clock()
        root_energy = float(scorer.score([goal], goal)[0])
        result.scorer_s += clock() - t
    nodes = result.nodes
    nodes.append(Node(0, -1, root_state, goal, "", 0, 0.0, 0.0, root_energy, clock() - t0))
    seen = {goal: 0}
    tie = itertools.count()  # FIFO among equal priorities, and avoids comparing nodes
    frontier: list[tuple[float, int, int]] = [(-_priority(0.0, 0, root_energy, cfg), next(tie), 0)]
    budget = cfg.max_nodes - 1  # the root counts as a node
    crashes_in_a_row = 0

    while frontier:
        if clock() - t0 > cfg.timeout_s:
            result.stop_reason = "timeout"
            return
        if result.tactic_calls >= budget:
            result.stop_reason = "max_nodes"
            return
        _, _, node_id = heapq.heappop(frontier)
        parent = nodes[node_id]
        parent.expanded = True
        result.expansions += 1

        t = clock()
        candidates = dedup_candidates(policy.generate(parent.state_pp, cfg.num_candidates, cfg.temperature))
        result.policy_s += clock() - t

        new_ids: list[int] = []
        for cand in candidates:
            if result.tactic_calls >= budget or clock() - t0 > cfg.timeout_s:
                break
            t = clock()
            try:
                outcome = env.run_tactic(parent.state, cand.tactic)
                crashes_in_a_row = 0
            except (SearchInfrastructureError, SearchStopped):
                raise
            except Exception as exc:  # noqa: BLE001 - a timeout/crash on one tactic is that tactic's error
                crashes_in_a_row += 1
                result.tactic_crashes += 1
                result.tactic_errors += 1
                log.warning("%s: tactic %r raised %s: %s", theorem.name, cand.tactic[:60], type(exc).__name__, exc)
                if crashes_in_a_row >= MAX_TACTIC_CRASHES_IN_A_ROW:
                    raise RuntimeError(f"{crashes_in_a_row} tactic calls in a row raised; last: "
                                       f"{type(exc).__name__}: {exc}") from exc
                continue
            finally:
                result.lean_s += clock() - t
                result.tactic_calls += 1
            if outcome.status == "error" or (outcome.status == "open" and outcome.state is None):
                result.tactic_errors += 1
                continue
            depth = parent.depth + 1
            cum = parent.cumulative_logprob + cand.logprob
            if outcome.status == "proved":
                closing = Node(len(nodes), parent.id, None, PROVED_STATE_PP, cand.tactic, depth, cand.logprob,
                               cum, None, clock() - t0, proved=True)
                path = _path_tactics(nodes, parent.id) + [cand.tactic]
                t = clock()
                verdict = verifier(theorem.header, theorem.formal_statement, path)
                result.lean_s += clock() - t
                if verdict.ok:
                    nodes.append(closing)
                    result.proved = True
                    result.proof = path
                    result.stop_reason = "proved"
                    _score_new(nodes, new_ids, scorer, goal, result, clock)  # siblings found so far
                    return
                result.verify_rejections += 1
                log.info("%s: verifier rejected a closed proof: %s", theorem.name, verdict.reason)
                continue
            state = outcome.state
            assert state is not None
            pp = state.pp
            if pp in seen:
                result.duplicate_states += 1
                continue
            node = Node(len(nodes), parent.id, state, pp, cand.tactic, depth, cand.logprob, cum, None,
                        clock() - t0)
            seen[pp] = node.id
            nodes.append(node)
            new_ids.append(node.id)

        _score_new(nodes, new_ids, scorer, goal, result, clock)
        for nid in new_ids:
            n = nodes[nid]
            heapq.heappush(frontier, (-_priority(n.cumulative_logprob, n.depth, n.energy, cfg), next(tie), nid))
    result.stop_reason = "exhausted"


def _score_new(nodes: list[Node], new_ids: list[int], scorer: EnergyScorer | None, goal: str,
               result: SearchResult, clock: Callable[[], float]) -> None:
    if scorer is None or not new_ids:
        return
    t = clock()
    energies = scorer.score([nodes[i].state_pp for i in new_ids], goal)
    result.scorer_s += clock() - t
    for nid, e in zip(new_ids, energies):
        nodes[nid].energy = float(e)


def _path_ids(nodes: Sequence[Node], node_id: int) -> list[int]:
    path = []
    while node_id >= 0:
        path.append(node_id)
        node_id = nodes[node_id].parent_id
    return path[::-1]


def _path_tactics(nodes: Sequence[Node], node_id: int) -> list[str]:
    return [nodes[i].tactic for i in _path_ids(nodes, node_id)[1:]]


def trajectory_rows(result: SearchResult) -> list[dict[str, Any]]:
    """`TRAJECTORY_SCHEMA` rows of one search tree."""
    positive: set[int] = set()
    if result.proved and result.nodes:
        positive = set(_path_ids(result.nodes, result.nodes[-1].id))
    rows = []
    for n in result.nodes:
        if not result.proved:
            label = "unknown"
        elif n.id in positive:
            label = "positive"
        else:
            # Off the found proof path in a proved tree: a (hard, when a sibling of the path)
            # negative, expanded or not; the EBM needs exactly these siblings (plan Task 2.4).
            label = "negative"
        rows.append({
            "theorem": result.theorem, "state_id": n.id, "parent_id": n.parent_id, "state_pp": n.state_pp,
            "tactic": n.tactic, "depth": n.depth, "llm_logprob": n.llm_logprob,
            "cumulative_logprob": n.cumulative_logprob, "energy": n.energy, "label": label,
            "sibling_group": n.parent_id, "proved": result.proved, "expanded": n.expanded,
            "elapsed_s": n.elapsed_s,
        })
    return rows
