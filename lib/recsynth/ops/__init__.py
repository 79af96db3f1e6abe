"""Operations: job runs, data-quality rows, logging."""
