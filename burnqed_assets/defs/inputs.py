"""The plan's raw inputs as external assets (group `raw_inputs`), so lineage starts at the files.

One observable source asset per field of `settings.Inputs` (key `raw_<name>`): the Goedel
proofs, the recorded traces, LEAN-GitHub, the three miniF2F files, the REPL transcripts and the
rename table. The phase assets that read an input name it in their `deps` (`raw_input(name)`).
Observing an input (the "Observe" button, `observe_raw_inputs`, or the raw-input sensor) records
its content fingerprint as the data version plus path, bytes, files and rows; an asset
materialized from an older version shows as stale in the UI.
"""
# No `from __future__ import annotations` in defs/: Dagster inspects the context annotation.

import dagster as dg

from burnqed_assets.data.inputs import InputObservation, observe_input
from burnqed_assets.settings import Inputs

GROUP = "raw_inputs"
KEY_PREFIX = "raw_"
INPUT_NAMES = tuple(Inputs.__dataclass_fields__)

DESCRIPTIONS = {
    "goedel_proofs": "Goedel-LM Lean-workbook proofs (Lean 4.9), the migration's source (plan M.1).",
    "goedel_recorded_traces": "Recorded tactic traces and statements (demo: what the Lean REPL stand-in answers "
                              "from; full: the traced output, not a raw input).",
    "lean_github": "InternLM LEAN-GitHub rows (plan M.9).",
    "minif2f_v2s": "miniF2F-v2s benchmark file (plan M.4); also excluded from the SFT data.",
    "minif2f_v2c": "miniF2F-v2c benchmark file (plan M.4); also excluded from the SFT data.",
    "minif2f_v1": "miniF2F v1 file (plan M.4): split labels for v2s/v2c; excluded from the SFT data.",
    "lean_repl_transcripts": "Recorded Lean REPL transcripts the demo's Lean REPL stand-in answers from (every "
                             "step that opens a Lean environment reads them).",
    "rename_table": "Lean 4.9 → 4.27 rename table of the migration and the benchmark port (plan M.2).",
}


def raw_input(name: str) -> dg.AssetKey:
    """The key of the external asset of `settings.inputs.<name>` (for a reader's `deps`)."""
    if name not in INPUT_NAMES:
        raise KeyError(f"no raw input {name!r}; settings.Inputs has {INPUT_NAMES}")
    return dg.AssetKey(f"{KEY_PREFIX}{name}")


def input_name(key: dg.AssetKey) -> str | None:
    """The input name of a raw-input key, else None."""
    name = key.to_user_string()
    return name[len(KEY_PREFIX):] if name.startswith(KEY_PREFIX) and name[len(KEY_PREFIX):] in INPUT_NAMES else None


def raw_inputs(*names: str) -> list[dg.AssetKey]:
    return [raw_input(n) for n in names]


# What a step that opens a Lean environment reads in the demo (the REPL stand-in's recordings).
LEAN_ENV_INPUTS = ("lean_repl_transcripts", "goedel_recorded_traces")
RAW_INPUT_KEYS = tuple(raw_input(n) for n in INPUT_NAMES)
RAW_INPUTS_SELECTION = dg.AssetSelection.assets(*RAW_INPUT_KEYS)


def observation_metadata(obs: InputObservation) -> dict[str, object]:
    return {"path": dg.MetadataValue.path(obs.path), "fingerprint": obs.fingerprint, "exists": obs.exists,
            "bytes": obs.bytes, "files": obs.files,
            "rows": obs.rows if obs.rows is not None else dg.MetadataValue.text("n/a (no .jsonl/.json rows)")}


def observation_event(name: str, obs: InputObservation) -> dg.AssetObservation:
    """An observation with the fingerprint as data version (what an observe run records)."""
    from dagster._core.definitions.data_version import DATA_VERSION_TAG

    return dg.AssetObservation(asset_key=raw_input(name), metadata=observation_metadata(obs),
                               tags={DATA_VERSION_TAG: obs.fingerprint})


@dg.multi_observable_source_asset(
    specs=[dg.AssetSpec(raw_input(n), group_name=GROUP, description=DESCRIPTIONS.get(n, f"raw input {n}"),
                        metadata={"settings_field": f"settings.inputs.{n}"}) for n in INPUT_NAMES],
    name="observe_raw_inputs", can_subset=True, required_resource_keys={"burnqed"},
    description="Fingerprints the profile's raw inputs (content hash, bytes, files, rows).")
def observe_raw_inputs(context: dg.AssetExecutionContext):
    settings = context.resources.burnqed.settings()
    paths = {name: spec.path for name, spec in settings.inputs.all().items()}
    for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
        name = input_name(key)
        obs = observe_input(paths[name])
        yield dg.ObserveResult(asset_key=key, data_version=dg.DataVersion(obs.fingerprint),
                               metadata=observation_metadata(obs))


defs = dg.Definitions(assets=[observe_raw_inputs])
