"""Domain layer (models): no Dagster imports here."""
