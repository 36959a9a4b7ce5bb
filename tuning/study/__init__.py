"""Stage 4, the lab's question: the study runner (:mod:`.runner`) plans its replicates
(:mod:`.budget`), runs them (:mod:`.replicates`), compares the approaches over them
(:mod:`.across_replicates`, tests in :mod:`tuning.statistics`) and writes the report
(:mod:`.replicated_report`); the fold-level comparison of one results tree
(:mod:`.comparison`, with :mod:`.tree_rows`, :mod:`.references` and :mod:`.report`) is
also ``python -m tuning compare``. Uses every earlier stage."""
