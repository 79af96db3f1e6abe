"""Pure DataFrame transformations: bronze -> silver -> gold. No I/O in this package."""
