"""Shim: experiment folders written before the search moved to :mod:`tuning.search` hold
these class paths in their ``tuner.pkl`` (Tune pickles the searcher and the scheduler).
Keep it while such folders may still be exported or resumed; new code imports
:mod:`tuning.search.searchers`."""

from tuning.search.searchers import RestorableASHA, StoppedAwareOptunaSearch  # noqa: F401
