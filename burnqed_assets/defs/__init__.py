"""The Dagster layer: one thin module per plan phase, each exporting `defs`."""
