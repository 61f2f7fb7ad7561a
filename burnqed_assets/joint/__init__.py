"""Domain layer (joint): no Dagster imports here."""
