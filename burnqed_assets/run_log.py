"""Quiet run output: the console logger of every run, and actionable errors as `dagster.Failure`.

Dagster's default console logger prints every framework event at DEBUG (about 1,000 lines for
the demo graph) and a failing step's stack trace twice (STEP_FAILURE, then RUN_FAILURE). The
`burnqed_console` logger prints, at INFO:
  - one progress line when a step starts (`[ 3/76] base_model`, the count where the run knows it),
    one when it ends (`done in 1m30s`, `reused`), one per check result, one for the run;
  - the assets' own INFO/WARNING/ERROR lines (training and search progress);
  - a failed step's error once: a `dagster.Failure` as its text only, anything else with its trace.
Everything still goes to the event log that the UI shows. `log_level: DEBUG` in the run config
(`loggers: {console: {config: {log_level: DEBUG}}}`) restores every framework event.

`fail_actionably` turns the errors a user fixes by hand (a missing input, model or Lean project,
a bad input line, a data root of the other profile) into `dagster.Failure`s carrying their message.
"""

from __future__ import annotations

import ast
import functools
import inspect
import logging
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import dagster as dg

# Warnings we cause on purpose or that come from inside libraries, filtered with the reason:
# - the instance's yaml-defined log handler (StepProgressHandler below) is a beta Dagster feature;
warnings.filterwarnings("ignore", message=r"Handling yaml-defined logging configuration", category=dg.BetaWarning)
# - Dagster's own parser of the `*` selection calls AssetSelection.all(include_sources=...);
warnings.filterwarnings("ignore", message=r"Parameter `include_sources` of function `AssetSelection.all`",
                        category=dg.BetaWarning)
# - the raw inputs are observed with Dagster's beta `multi_observable_source_asset` (defs/inputs.py);
warnings.filterwarnings("ignore", message=r"Function `multi_observable_source_asset` is currently in beta",
                        category=dg.BetaWarning)
# - the chunked tracing asset's single-run backfill policy (defs/migration.py) is a beta parameter;
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy` of function `asset`", category=dg.BetaWarning)
# - TRL reads `model.is_gradient_checkpointing`, an alias transformers 5 deprecates (our own code
#   uses the new `activation_checkpointing` names).
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)

FRAMEWORK_EVENTS_SHOWN = {
    "STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED", "STEP_UP_FOR_RETRY",
    "ASSET_CHECK_EVALUATION", "RUN_SUCCESS", "RUN_FAILURE", "RUN_CANCELED",
}


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class _RunState:
    """What the handlers of one run in this process have seen (Dagster builds a handler per step)."""

    def __init__(self) -> None:
        self.total_steps: int | None = None
        self.in_process = False  # False in a multiprocess executor's step process: no run-wide count
        self.started = 0
        self.reused_steps: set[str] = set()
        self.checked_steps: set[str] = set()


_RUNS: dict[str, _RunState] = {}


class QuietRunHandler(logging.Handler):
    """Formats Dagster log records as the short lines described in the module docstring."""

    def __init__(self, threshold: int, stream=None):
        super().__init__(level=logging.DEBUG)
        self.threshold = threshold
        self.stream = stream if stream is not None else sys.stderr

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.render(record)
            if line:
                self._write(line)
        except Exception:  # a logger must never fail the step it reports on
            self.handleError(record)

    def render(self, record: logging.LogRecord) -> str | None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        step = meta.get("step_key") or ""
        if event is None:
            if record.levelno < self.threshold:
                return None
            text = meta.get("orig_message") or record.getMessage()
            level = "" if record.levelno < logging.WARNING else f"{record.levelname}: "
            return f"    {step}: {level}{text}" if step else f"{level}{text}"
        if self.threshold <= logging.DEBUG:
            return record.getMessage()  # everything, in Dagster's own format
        return self._render_event(event, step, meta.get("run_id") or "")

    def _render_event(self, event: Any, step: str, run_id: str) -> str | None:
        kind = event.event_type_value
        data = event.event_specific_data
        run = _RUNS.setdefault(run_id, _RunState())
        if kind == "ENGINE_EVENT":
            message = event.message or ""
            # The in-process executor runs every step in this process: count them run-wide.
            if message.startswith("Executing steps in process"):
                run.in_process = True
                keys = (getattr(data, "metadata", None) or {}).get("step_keys")
                if keys is not None:
                    try:
                        run.total_steps = len(ast.literal_eval(str(getattr(keys, "value", keys))))
                    except (ValueError, SyntaxError):
                        pass
            elif message.startswith("Finished steps in process"):
                return f"finished {run.started} steps ({message.rsplit(' in ', 1)[-1]})"
            return None
        if kind == "ASSET_MATERIALIZATION":
            mat = getattr(data, "materialization", None)
            reused = (getattr(mat, "metadata", None) or {}).get("reused")
            if reused is not None and getattr(reused, "value", reused) is True:
                run.reused_steps.add(step)
            return None
        if kind not in FRAMEWORK_EVENTS_SHOWN:
            return None
        if kind == "STEP_START":
            run.started += 1
            if not run.in_process:
                return f"[step] {step}"
            count = f"{run.started:>2}/{run.total_steps}" if run.total_steps else f"{run.started:>2}"
            return f"[{count}] {step}"
        if kind == "STEP_SUCCESS":
            if step in run.checked_steps:
                return None  # a check step: its result line says it all
            took = _duration((getattr(data, "duration_ms", None) or 0.0) / 1000.0)
            how = "reused its previous output" if step in run.reused_steps else "done"
            return f"    {step}: {how} in {took}"
        if kind == "STEP_SKIPPED":
            return f"    {step}: skipped (an upstream step failed or a blocking check did not pass)"
        if kind == "STEP_UP_FOR_RETRY":
            return f"    {step}: will retry ({event.message})"
        if kind == "STEP_FAILURE":
            return f"    {step}: FAILED\n{_failure_text(data)}"
        if kind == "ASSET_CHECK_EVALUATION":
            status = "passed" if data.passed else (
                "NOT RUN" if (data.description or "").lower().startswith("not run") else
                f"FAILED ({data.severity.value})")
            text = data.description or ""
            if status == "NOT RUN" and text.lower().startswith("not run:"):
                text = text[len("not run:"):].strip()
            desc = f": {text}" if text else ""
            run.checked_steps.add(step)
            return f"    check {data.check_name} {status}{desc}"
        if kind == "RUN_SUCCESS":
            return f"run succeeded ({run.started} steps); `dagster dev` shows it with its checks and plots"
        if kind in ("RUN_FAILURE", "RUN_CANCELED"):
            # The failing step's error was printed once already; the run line only names the steps.
            return f"run {'failed' if kind == 'RUN_FAILURE' else 'canceled'}: {event.message}"
        return None


class StepProgressHandler(QuietRunHandler):
    """The instance-level form (dagster.yaml `python_logs.dagster_handler_config`): only the
    step, check and run lines; Dagster's console logger at `python_log_level: INFO` prints the
    assets' own lines and errors."""

    def __init__(self, level: int | str = logging.DEBUG, stream=None):
        super().__init__(threshold=logging.INFO, stream=stream)

    def render(self, record: logging.LogRecord) -> str | None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if meta.get("run_id") in _CONSOLE_RUNS:
            return None  # the run's own `burnqed_console` logger prints everything
        if event is None or event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE", "RUN_CANCELED"):
            return None  # printed by Dagster's console logger
        return self._render_event(event, meta.get("step_key") or "", meta.get("run_id") or "")


# Runs (in this process) whose console is the `burnqed_console` logger.
_CONSOLE_RUNS: set[str] = set()

# Run config that makes `burnqed_console` a run's only console logger: Dagster then drops its
# default console logger, so a failure prints once (`--config-json`, or the launchpad). A job
# cannot carry it for its range-partitioned runs (Dagster ignores a partitioned job's config
# there), so the README's materialize_all run keeps Dagster's console at INFO.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@dg.logger(
    config_schema={"log_level": dg.Field(str, default_value="INFO",
                                         description="INFO: progress lines; DEBUG: every framework event")},
    description="Quiet console: a line per step, per check and per run, the assets' own INFO lines, "
                "a failure's text once (burnqed_assets/run_log.py).",
)
def burnqed_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    level = logging.getLevelName(str(init_context.logger_config["log_level"]).upper())
    if init_context.run_id:
        _CONSOLE_RUNS.add(init_context.run_id)
    log = logging.Logger("burnqed_assets.run", level=logging.DEBUG)  # the handler decides what to print
    log.addHandler(QuietRunHandler(level if isinstance(level, int) else logging.INFO))
    log.propagate = False
    return log


def _failure_text(data: Any) -> str:
    user = getattr(data, "user_failure_data", None)
    if user is not None and user.description:
        return _indent(user.description)
    error = getattr(data, "error", None)
    return _indent(error.to_string() if error is not None else "unknown error")


def _indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in str(text).rstrip().splitlines())


# ----------------------------------------------------------------------- actionable failures
def actionable_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message already tells the user what to fix (names the path and how to get it)."""
    from burnqed_assets.data.io import BadInputError
    from burnqed_assets.data_root import ProfileMismatchError
    from burnqed_assets.lean.repl_env import LeanSetupError
    from burnqed_assets.models.loading import ModelNotFoundError
    from burnqed_assets.settings import MissingInputError

    return (MissingInputError, ModelNotFoundError, LeanSetupError, ProfileMismatchError, BadInputError)


def _failure(exc: BaseException) -> dg.Failure:
    return dg.Failure(description=str(exc), metadata={"error": type(exc).__name__}, allow_retries=False)


def _wrap(fn: Callable[..., Any], errors: tuple[type[BaseException], ...]) -> Callable[..., Any]:
    if getattr(fn, "_burnqed_actionable", False):
        return fn
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except errors as exc:
                raise _failure(exc) from None
        wrapper: Callable[..., Any] = gen_wrapper
    else:
        @functools.wraps(fn)
        def fn_wrapper(*args: Any, **kwargs: Any):
            try:
                return fn(*args, **kwargs)
            except errors as exc:
                raise _failure(exc) from None
        wrapper = fn_wrapper
    wrapper._burnqed_actionable = True  # type: ignore[attr-defined]
    return wrapper


def fail_actionably(definitions: Iterable[Any]) -> None:
    """Make each asset's and check's compute function raise `dagster.Failure(<message>)` for the
    actionable errors, in place. Dagster has no public hook that maps a step's exception, so this
    swaps the decorated function inside the op (pinned dagster; guarded by
    burnqed_assets_tests/ops/test_ops_quiet_logs.py)."""
    from dagster._core.definitions.decorators.op_decorator import DecoratedOpFunction

    errors = actionable_errors()
    seen: set[int] = set()
    for d in definitions:
        node = getattr(d, "node_def", None)
        if not isinstance(node, dg.OpDefinition) or id(node) in seen:
            continue
        seen.add(id(node))
        compute = node.compute_fn
        if isinstance(compute, DecoratedOpFunction):
            node._compute_fn = DecoratedOpFunction(_wrap(compute.decorated_fn, errors))  # noqa: SLF001
