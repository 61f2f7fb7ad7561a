"""Domain layer (search): no Dagster imports here."""
