"""Runtime: the job runner (runs), its per-job locks, stage timing, cached frames and MLflow tracking."""
