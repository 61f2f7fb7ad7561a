"""Domain layer (ebm): no Dagster imports here."""
