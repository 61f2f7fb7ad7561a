"""Domain layer (reports): no Dagster imports here."""
