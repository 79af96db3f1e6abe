"""Job bodies: read tables, call the pure transforms in recsynth.etl, write tables."""
