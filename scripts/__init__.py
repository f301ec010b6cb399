"""Scripts: demo, batch reconstruction, benchmarks, scene builders (``scripts.scenes``)."""
