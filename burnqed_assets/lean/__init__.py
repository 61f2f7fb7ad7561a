"""Domain layer (lean): no Dagster imports here."""
