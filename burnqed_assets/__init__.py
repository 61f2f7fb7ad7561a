"""burnqed_assets: the burn-qed v2 theorem-proving plan as a Dagster asset graph."""

__version__ = "0.1.0"
