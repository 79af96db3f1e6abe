"""Reporting: what the lake says about its runs: `recsynth status`, the run summary, data-quality rows."""
