"""Benchmarks of spikesort-tune (not run in CI; their ``--quick`` forms run in the tests).

See ``benchmarks/README.md`` for one command per benchmark and ``benchmarks/RESULTS.md``
for the figures measured on the project's machine.
"""
