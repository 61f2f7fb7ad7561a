"""Quiet run output: the console logger of every run, and actionable errors as `dagster.Failure`.

Dagster's default console logger prints every framework event at DEBUG (about 1,000 lines for
the demo graph) and a failing step's error twice, each time with its stack (STEP_FAILURE, then
RUN_FAILURE), plus an ERROR line for every step left out downstream. The `burnqed_console` logger
prints, at INFO:
  - one progress line when a step starts (`[ 3/76] base_model`, the count where the run knows it),
    one when it ends (`done in 1m30s`, `reused`), one per check result, one for the run;
  - the assets' own INFO/WARNING/ERROR lines (training and search progress);
  - a failed step's error once: a `dagster.Failure` as its text only, anything else with its trace;
    the steps not run because of it as one count on the run's line.
Everything still goes to the event log that the UI shows.

`burnqed_console` is the console of every run of these definitions (`use_quiet_console`), the
README's range-partitioned `materialize_all` run included, whose run config Dagster leaves empty.
Its threshold is the instance's `python_logs.python_log_level` (INFO in the shipped dagster.yaml
files; DEBUG prints every framework event in Dagster's own format), or the run config's
`loggers: {console: {config: {log_level: DEBUG}}}`.

`fail_actionably` turns the errors a user fixes by hand (a missing input, model or Lean project,
a bad input line, a data root of the other profile) into `dagster.Failure`s carrying their message.
"""

from __future__ import annotations

import ast
import functools
import inspect
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import dagster as dg

# Warnings we cause on purpose or that come from inside libraries, filtered with the reason:
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
        self.not_run = 0  # steps Dagster left out because an upstream step failed


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
            if self.threshold > logging.DEBUG and _is_left_out_step(text):
                # Dagster logs an ERROR per downstream step of a failure: counted on the run's line.
                _RUNS.setdefault(meta.get("run_id") or "", _RunState()).not_run += 1
                return None
            level = "" if record.levelno < logging.WARNING else f"{record.levelname}: "
            return f"    {step}: {level}{text}" if step else f"{level}{text}"
        if self.threshold <= logging.DEBUG:
            return record.getMessage()  # everything, in Dagster's own format
        return self._render_event(event, step, meta.get("run_id") or "")

    def _render_event(self, event: Any, step: str, run_id: str) -> str | None:
        # The enum's name: its value is still PIPELINE_SUCCESS / PIPELINE_FAILURE for run events.
        kind = event.event_type.name
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
            return f"run succeeded ({run.started} steps); `dg dev` shows it with its checks and plots"
        if kind in ("RUN_FAILURE", "RUN_CANCELED"):
            # The failing step's error was printed once already; the run line only names the steps.
            left_out = (f" ({run.not_run} downstream step{'s' if run.not_run != 1 else ''} not run)"
                        if run.not_run else "")
            return f"run {'failed' if kind == 'RUN_FAILURE' else 'canceled'}: {event.message}{left_out}"
        return None


def _is_left_out_step(text: str) -> bool:
    """Dagster's `Dependencies for step X failed: [...]. Not executing.` (plan/active.py)."""
    return text.startswith("Dependencies for step ") and text.rstrip().endswith("Not executing.")


@dg.logger(
    config_schema={"log_level": dg.Field(str, default_value="INFO",
                                         description="INFO: progress lines; DEBUG: every framework event")},
    description="Quiet console: a line per step, per check and per run, the assets' own INFO lines, "
                "a failure's text once (burnqed_assets/run_log.py).",
)
def burnqed_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    level = logging.getLevelName(str(init_context.logger_config["log_level"]).upper())
    log = logging.Logger("burnqed_assets.run", level=logging.DEBUG)  # the handler decides what to print
    log.addHandler(QuietRunHandler(level if isinstance(level, int) else logging.INFO, stream=_terminal()))
    log.propagate = False
    return log


def _terminal() -> Any:
    """Where the run was started (the terminal or the caller's pipe): a duplicate of stderr, taken
    when the run's loggers are made, before Dagster points the step's stderr at its compute-log
    file. Dagster mirrors that file back with `tail -F` and stops the tail when the step ends, so
    a step's last lines, its failure among them, can miss the terminal (seen with the multiprocess
    executor); the UI's event log has every line either way. Closed with the logger."""
    try:
        fd = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return sys.stderr  # no file descriptor (an in-memory stream): write to it directly
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    return os.fdopen(fd, "w", buffering=1, encoding=encoding, errors="replace")


def use_quiet_console() -> None:
    """Make `burnqed_console` the console logger of every run in this process whose run config
    names no logger, at the instance's `python_log_level`.

    Dagster gives such runs its colored console logger (`default_system_loggers`), and a job cannot
    name another one for them: a job's default run config is per partition, and a range run
    (README command 1: every tracing chunk in one run) gets none; Dagster's docs say a logger cannot
    be set globally for a code location. So this swaps the function Dagster's run context calls
    for the default loggers, in the processes that load these definitions (the CLI, the run worker,
    the step processes). Contexts built without an instance keep Dagster's default. Pinned dagster;
    guarded by burnqed_assets_tests/ops/test_ops_quiet_logs.py."""
    from dagster._core.execution import context_creation_job

    dagster_default = context_creation_job.default_system_loggers
    if getattr(dagster_default, "_burnqed_quiet", False):
        return

    def system_loggers(instance: Any) -> list[tuple[dg.LoggerDefinition, dict[str, Any]]]:
        if instance is None:
            return list(dagster_default(instance))
        level = instance.python_log_level or "DEBUG"
        name = level if isinstance(level, str) else logging.getLevelName(level)
        return [(burnqed_console, {"log_level": str(name).upper()})]

    system_loggers._burnqed_quiet = True  # type: ignore[attr-defined]
    context_creation_job.default_system_loggers = system_loggers  # type: ignore[assignment]


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
