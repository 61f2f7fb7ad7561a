"""Data-refresh schedule and the follow-upstream automation condition."""

import datetime as dt

import dagster as dg

from burnqed_assets.defs import operations

K = dg.AssetKey

# --------------------------------------------------------------------- automation condition

GATE_PASSES = {"value": False}


@dg.asset(group_name="phase_m_test")
def upstream_data() -> None:
    return None


@dg.asset_check(asset=upstream_data, blocking=True)
def upstream_gate() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=GATE_PASSES["value"], severity=dg.AssetCheckSeverity.ERROR)


@dg.asset(deps=[upstream_data], group_name="phase_1_test")
def downstream_model() -> None:
    return None


def _graph() -> dg.Definitions:
    return operations.with_automation(
        dg.Definitions(assets=[upstream_data, downstream_model], asset_checks=[upstream_gate])
    )


def _condition_of(defs: dg.Definitions, key: str):
    return next(s.automation_condition for s in operations.iter_specs(defs) if s.key == K(key))


def test_with_automation_sets_condition_on_assets_with_deps_only():
    defs = _graph()
    assert _condition_of(defs, "upstream_data") is None
    cond = _condition_of(defs, "downstream_model")
    assert cond is not None and cond.get_label() == operations.AUTOMATION_LABEL
    # Checks stay attached after the spec mapping.
    assert dg.AssetCheckKey(K("upstream_data"), "upstream_gate") in {
        k for a in defs.asset_checks for k in a.check_keys
    }


def test_owner_condition_is_kept():
    @dg.asset(deps=[upstream_data], automation_condition=dg.AutomationCondition.on_missing())
    def owned() -> None:
        return None

    defs = operations.with_automation(dg.Definitions(assets=[upstream_data, owned]))
    assert _condition_of(defs, "owned").get_label() == "on_missing"


def test_downstream_follows_only_after_upstream_blocking_check_passed():
    defs = _graph()
    instance = dg.DagsterInstance.ephemeral()
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert result.total_requested == 0  # upstream missing: nothing to follow

    # Upstream updates but its blocking gate fails (raise_on_error=False: the run fails by design).
    GATE_PASSES["value"] = False
    dg.materialize([upstream_data, upstream_gate], instance=instance, raise_on_error=False)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_num_requested(K("downstream_model")) == 0

    # The data fix: upstream re-materialized and the gate passes -> downstream is requested.
    GATE_PASSES["value"] = True
    dg.materialize([upstream_data, upstream_gate], instance=instance)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_num_requested(K("downstream_model")) == 1
    assert result.get_num_requested(K("upstream_data")) == 0


# --------------------------------------------------------------------------- schedule


def test_data_refresh_job_selects_only_data_groups_and_schedule_requests_it():
    defs = _graph()
    jobs, schedules = operations.build_data_refresh(defs)
    assert len(jobs) == 1 and len(schedules) == 1
    full = dg.Definitions.merge(defs, dg.Definitions(jobs=jobs, schedules=schedules))
    job = full.resolve_job_def("data_refresh_job")
    assert job.asset_layer.executable_asset_keys == {K("upstream_data")}

    schedule = schedules[0]
    assert schedule.cron_schedule == operations.DATA_REFRESH_CRON
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    tick = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.timezone.utc)
    data = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
    assert len(data.run_requests) == 1
    assert schedule.job_name == "data_refresh_job"


def test_no_data_groups_means_no_refresh_job():
    @dg.asset(group_name="phase_2_test")
    def later_phase() -> None:
        return None

    defs = dg.Definitions(assets=[later_phase])
    assert operations.build_data_refresh(defs) == ([], [])


def test_real_definitions_wire_operations():
    from burnqed_assets.definitions import defs

    sensors = {s.name for s in defs.sensors}
    assert {operations.INPUT_SENSOR_NAME, "default_automation_condition_sensor"} <= sensors
    assert {s.name for s in defs.schedules} == {"weekly_data_refresh"}
    job = defs.resolve_job_def("data_refresh_job")
    groups = {s.key: s.group_name for s in operations.iter_specs(defs)}
    assert job.asset_layer.executable_asset_keys, "the data refresh selects the data assets"
    for key in job.asset_layer.executable_asset_keys:
        assert groups[key].startswith(operations.DATA_GROUP_PREFIXES)
    for spec in operations.iter_specs(defs):
        if spec.deps and spec.automation_condition is not None:
            assert spec.automation_condition.get_label()  # labelled, visible in the UI
        if not spec.deps:
            # Roots are refreshed by the sensor / schedule, not by eager on a fresh instance.
            assert spec.automation_condition is None or spec.automation_condition.get_label() != operations.AUTOMATION_LABEL
