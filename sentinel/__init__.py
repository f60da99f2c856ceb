"""withdrawal-sentinel: pure domain package (models, taxonomy, policy). No I/O."""
