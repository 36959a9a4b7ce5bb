"""Stage 3, the export: the best configuration rerun over one split and full splits
(:mod:`.reruns`, with optional ensembles, :mod:`.ensemble`), the lab's results tree
(:mod:`.results_tree`) and the command that writes both (:mod:`.exporter`). Uses the
search and data stages and the model bundle."""
