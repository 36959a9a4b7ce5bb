"""Shim: experiment folders written before the search moved to :mod:`tuning.search` hold
this class path in their ``tuner.pkl`` (Tune pickles the progress reporter). Keep it while
such folders may still be exported or resumed; new code imports :mod:`tuning.search.console`."""

from tuning.search.console import ConsoleReporter  # noqa: F401
