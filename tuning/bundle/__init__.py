"""The model bundle a search leaves: written by the export, loaded with
:func:`load_model` (:mod:`.model_bundle`), applied to new spikes by ``predict``
(:mod:`.predict`)."""


def __getattr__(name: str):  # torch loads on first use, not on import
    if name == "load_model":
        from tuning.bundle.model_bundle import load_model

        return load_model
    raise AttributeError(f"module 'tuning.bundle' has no attribute {name!r}")
