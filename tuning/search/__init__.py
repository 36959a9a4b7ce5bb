"""Stage 2, the search: the Ray Tune driver (:mod:`.driver`), the trainable
(:mod:`.trainable`), the searchers and schedulers (:mod:`.searchers`), the one best-trial
rule (:mod:`.best_trial`), the quiet console (:mod:`.console`), why trials failed
(:mod:`.failures`), the guard of the storage folder (:mod:`.storage_guard`), the Ray runtime
(:mod:`.ray_runtime`) and the experiment's run record (:mod:`.run_record`). Uses the data
stage; nothing of export, bundle or study."""
