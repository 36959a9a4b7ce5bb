"""Settled one-off studies: each answered its question (the figures are in
``benchmarks/RESULTS.md``; each module names the commit its section was written at). They still
run as ``python -m benchmarks.archive.X``; their tests run only with ``pytest --archive``."""
