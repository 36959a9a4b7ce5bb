"""Shim: experiment folders written before the search moved to :mod:`tuning.search` hold
this class path in their ``tuner.pkl`` (Tune pickled the console, then a ``CLIReporter``,
as the progress reporter). The name now resolves to the console callback, which such a
pickle unpickles into; ``--resume`` replaces it with a fresh one
(:func:`tuning.search.driver.set_restored_output`). Keep it while such folders may still be
exported or resumed; new code imports :mod:`tuning.search.console`."""

from tuning.search.console import ConsoleReporter  # noqa: F401
