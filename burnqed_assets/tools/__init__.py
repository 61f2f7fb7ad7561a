"""Command-line tools that read the Definitions (not part of the asset graph)."""
