"""Benchmarks of spikesort-tune, each a module run from the repository root as
``python -m benchmarks.X`` (not run in CI; their ``--quick`` forms run in the tests).
``benchmarks/archive/`` holds the settled one-off studies.

See ``benchmarks/README.md`` for one command per benchmark and ``benchmarks/RESULTS.md``
for the figures measured on the project's machine.
"""
