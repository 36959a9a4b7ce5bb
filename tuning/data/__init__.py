"""Stage 1, the data: reading and validating CSVs (:mod:`.readers`; opening them,
:mod:`.csv_files`), which columns are samples (:mod:`.columns`), labels -> classes
(:mod:`.labels`), channel layouts (:mod:`.channels`), splits and folds (:mod:`.splits`),
normalisation and resampling (:mod:`.preprocess`), augmentation (:mod:`.augment`), and
turning a spike sorter's output into a dataset CSV (:mod:`.importers`, with
:mod:`.spike_waveforms`). Imports nothing of the later stages."""

from tuning.data.readers import Dataset, file_sha256, load_dataset, load_datasets, resolve_dataset_paths

__all__ = ["Dataset", "file_sha256", "load_dataset", "load_datasets", "resolve_dataset_paths"]
