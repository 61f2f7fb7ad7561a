"""Domain layer (data): no Dagster imports here."""
