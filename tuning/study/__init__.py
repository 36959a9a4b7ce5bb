"""Stage 4, the lab's question: the study runner (:mod:`.runner`), learning curves
(:mod:`.learning_curves`), and the comparison (:mod:`.comparison`: rows of the results tree
in :mod:`.tree_rows`, scikit-learn references in :mod:`.references`, the report in
:mod:`.report`; the tests in :mod:`tuning.statistics`). Uses every earlier stage."""
