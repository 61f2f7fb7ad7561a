"""(stub) see DESIGN.md for what this module holds."""

import dagster as dg

defs = dg.Definitions()
