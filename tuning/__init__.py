"""spikesort-tune's pipeline. ``from tuning import load_model`` loads a model bundle
(:func:`tuning.bundle.model_bundle.load_model`); torch loads on that first use, not on ``import tuning``."""


def __getattr__(name: str):
    if name == "load_model":
        from tuning.bundle.model_bundle import load_model

        return load_model
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")
