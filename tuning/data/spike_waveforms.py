"""Each unit's spike waveforms through SpikeInterface's own ``SortingAnalyzer`` extensions.

Two ways, one result (:class:`UnitWaveforms`):

* :func:`from_extension`: an analyzer with ``random_spikes`` and ``waveforms`` computed
  already holds every waveform the dataset needs, recording or not. Its window may be cut
  narrower, its spikes subsampled (seeded), its channels chosen among those its sparsity kept.
* :func:`compute`: a recording and a sorting (a Phy/Kilosort folder, or an analyzer without
  the extension): an in-memory analyzer computes ``random_spikes`` (``uniform``, the
  ``max_spikes`` and ``seed`` asked for, ``margin_size = max(nbefore, nafter)`` so that
  every window lies inside its segment) and ``waveforms`` (``ms_before`` / ``ms_after``),
  restricted by a sparsity to the channels asked for.

Channels: each unit's main channel is SpikeInterface's (the analyzer's ``main_channel_id``,
estimated from the recording with peak sign "both" when the source has none); ``n_nearest``
K takes it and the K-1 channels nearest to it on the probe (ties by channel order). The
result lists them main channel first, then nearest first, so column ``ch0_*`` is always the
unit's own largest channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tuning.errors import InputError

__all__ = ["UnitWaveforms", "from_extension", "compute", "extension_mismatch", "samples"]


@dataclass
class UnitWaveforms:
    """Waveforms per unit (dicts keyed by the sorting's unit id, in the order asked for).

    Attributes:
        waveforms: float32 ``(n_spikes, n_channels, nbefore + nafter)`` per unit, in
            microvolts when ``in_uv``.
        sample_index, segment_index: int64 ``(n_spikes,)``: where each spike is (its peak,
            in samples from its segment's start).
        channels: channel indices per unit, main channel first.
        counts: per unit, ``imported``, ``in_sorting`` and the spikes left out near the
            segments' edges (``near_edges``).
        nbefore, nafter: the window in samples.
        in_uv: values in microvolts (False: the recording's raw units).
        origin: for the JSON: where the waveforms came from and the extensions' parameters.
    """

    waveforms: dict = field(default_factory=dict)
    sample_index: dict = field(default_factory=dict)
    segment_index: dict = field(default_factory=dict)
    channels: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    nbefore: int = 0
    nafter: int = 0
    in_uv: bool = True
    origin: dict = field(default_factory=dict)


def samples(ms: float, sampling_frequency: float) -> int:
    """Milliseconds -> samples by SpikeInterface's own rounding (``ms_to_samples``)."""
    from spikeinterface.core.core_tools import ms_to_samples

    return int(ms_to_samples(ms, sampling_frequency))


def main_channels(analyzer_or_none, sorting, recording, seed: int) -> np.ndarray:
    """Main channel index per unit of ``sorting``: the analyzer's, else estimated from the recording."""
    if analyzer_or_none is not None:
        ids = analyzer_or_none.sorting.get_property("main_channel_id")
        if ids is not None:
            position = {str(c): k for k, c in enumerate(analyzer_or_none.channel_ids)}
            by_unit = dict(zip(map(str, analyzer_or_none.unit_ids), (position[str(c)] for c in ids)))
            return np.array([by_unit[str(u)] for u in sorting.unit_ids], dtype=np.int64)
        by_unit = dict(zip(map(str, analyzer_or_none.unit_ids), analyzer_or_none.get_main_channels()))
        return np.array([by_unit[str(u)] for u in sorting.unit_ids], dtype=np.int64)
    from spikeinterface.core.template_tools import estimate_main_channel_from_recording

    return np.asarray(estimate_main_channel_from_recording(recording, sorting, peak_sign="both", peak_mode="extremum",
                                                           seed=seed, progress_bar=False), dtype=np.int64)


def nearest_channels(main: int, locations: np.ndarray | None, n_nearest: int | None) -> np.ndarray:
    """``[main]``, or the ``n_nearest`` channels nearest to it (itself first, ties by index)."""
    if n_nearest is None:
        return np.array([main])
    distance = np.linalg.norm(locations - locations[main], axis=1)
    return np.argsort(distance, kind="stable")[:n_nearest]


def _locations(obj, n_nearest) -> np.ndarray | None:
    if n_nearest is None:
        return None
    try:
        locations = np.asarray(obj.get_channel_locations(), dtype=np.float64)
    except Exception:
        locations = None
    if locations is None or len(locations) != len(obj.channel_ids):
        raise InputError("the recording has no probe geometry (channel locations); attach a probe to it "
                         "or use --channels extremum")
    return locations


# --------------------------------------------------------------------------------------
# From the analyzer's waveforms extension
# --------------------------------------------------------------------------------------


def extension_mismatch(analyzer, unit_ids, n_nearest, nbefore, nafter) -> str | None:
    """Why the analyzer's ``waveforms`` cannot give what was asked (a clause), or None when it can.

    ``nbefore`` / ``nafter``: the window asked for in samples (None: the extension's own).
    """
    ext = analyzer.get_extension("waveforms")
    if (nbefore is not None and nbefore > ext.nbefore) or (nafter is not None and nafter > ext.nafter):
        return (f"its waveforms extension covers {ext.params['ms_before']:g} ms before and "
                f"{ext.params['ms_after']:g} ms after each spike, less than the window asked for")
    locations = _locations(analyzer, n_nearest)
    mains = main_channels(analyzer, analyzer.sorting, None, 0)
    index = {str(u): k for k, u in enumerate(analyzer.unit_ids)}
    for uid in unit_ids:
        wanted = nearest_channels(int(mains[index[str(uid)]]), locations, n_nearest)
        kept = _kept_channels(analyzer, uid)
        if not np.isin(wanted, kept).all():
            ids = analyzer.channel_ids
            return (f"its waveforms keep channels {', '.join(map(str, ids[kept]))} of unit {uid} (its sparsity), "
                    f"not all of {', '.join(map(str, ids[wanted]))} asked for with --channels")
    return None


def _kept_channels(analyzer, uid) -> np.ndarray:
    if analyzer.sparsity is None:
        return np.arange(len(analyzer.channel_ids))
    return np.asarray(analyzer.sparsity.unit_id_to_channel_indices[uid])


def from_extension(analyzer, unit_ids, n_nearest, nbefore, nafter, max_spikes, seed) -> UnitWaveforms:
    """The waveforms the analyzer holds (check :func:`extension_mismatch` first).

    Spikes whose window SpikeInterface had to zero-pad (closer than the window to a segment's
    edge) are left out; ``max_spikes`` below the extension's count keeps a seeded subset.
    """
    ext = analyzer.get_extension("waveforms")
    random_spikes = analyzer.get_extension("random_spikes")
    spikes = random_spikes.get_random_spikes()
    nb = ext.nbefore if nbefore is None else nbefore
    na = ext.nafter if nafter is None else nafter
    cut = slice(ext.nbefore - nb, ext.nbefore + na)
    num_samples = np.asarray(analyzer.rec_attributes["num_samples"], dtype=np.int64)
    locations = _locations(analyzer, n_nearest)
    mains = main_channels(analyzer, analyzer.sorting, None, seed)
    index = {str(u): k for k, u in enumerate(analyzer.unit_ids)}
    rng = np.random.default_rng(seed)
    out = UnitWaveforms(nbefore=nb, nafter=na, in_uv=bool(analyzer.return_in_uV),
                        origin={"from": "the analyzer's waveforms extension",
                                "random_spikes": _plain_params(random_spikes.params),
                                "waveforms": _plain_params(ext.params)})
    for uid in unit_ids:
        unit = index[str(uid)]
        mine = spikes[spikes["unit_index"] == unit]
        whole = ext.get_waveforms_one_unit(uid)  # (n, samples, kept channels), in the random spikes' order
        inside = ((mine["sample_index"] >= ext.nbefore)
                  & (mine["sample_index"] + ext.nafter <= num_samples[mine["segment_index"]]))
        keep = np.flatnonzero(inside)
        if max_spikes is not None and len(keep) > max_spikes:
            keep = np.sort(rng.choice(keep, size=max_spikes, replace=False))
        wanted = nearest_channels(int(mains[unit]), locations, n_nearest)
        kept = list(_kept_channels(analyzer, uid))
        columns = [kept.index(c) for c in wanted]
        block = np.asarray(whole[keep][:, cut][:, :, columns], dtype=np.float32)
        out.waveforms[uid] = np.ascontiguousarray(block.transpose(0, 2, 1))
        out.sample_index[uid] = mine["sample_index"][keep].astype(np.int64)
        out.segment_index[uid] = mine["segment_index"][keep].astype(np.int64)
        out.channels[uid] = wanted
        out.counts[uid] = {"imported": int(len(keep)), "in_sorting": _spike_count(analyzer.sorting, uid),
                           "in_extension": int(len(mine)), "near_edges": int(len(mine) - inside.sum())}
    return out


# --------------------------------------------------------------------------------------
# Computed in memory from the recording
# --------------------------------------------------------------------------------------


def compute(sorting, recording, unit_ids, n_nearest, ms_before, ms_after, max_spikes, seed,
            analyzer=None) -> UnitWaveforms:
    """``random_spikes`` + ``waveforms`` of an in-memory analyzer on ``recording``.

    ``analyzer``: the source analyzer, whose main channels are kept (None: estimated).
    """
    import spikeinterface.core as sc

    sorting = sorting.select_units(list(unit_ids))
    fs = float(recording.get_sampling_frequency())
    nbefore, nafter = samples(ms_before, fs), samples(ms_after, fs)
    locations = _locations(recording, n_nearest)
    mains = main_channels(analyzer, sorting, recording, seed)
    mask = np.zeros((len(sorting.unit_ids), recording.get_num_channels()), dtype=bool)
    wanted = {}
    for k, uid in enumerate(sorting.unit_ids):
        wanted[uid] = nearest_channels(int(mains[k]), locations, n_nearest)
        mask[k, wanted[uid]] = True
    sparsity = sc.ChannelSparsity(mask, sorting.unit_ids, recording.channel_ids)
    in_uv = bool(recording.has_scaleable_traces())
    memory = sc.create_sorting_analyzer(sorting, recording, format="memory", sparsity=sparsity,
                                        main_channel_indices=mains, return_in_uV=in_uv)
    total = max((_spike_count(sorting, u) for u in sorting.unit_ids), default=0)
    random_params = dict(method="uniform", max_spikes_per_unit=int(max_spikes if max_spikes is not None else total),
                         margin_size=max(nbefore, nafter), seed=seed)
    memory.compute("random_spikes", verbose=False, **random_params)
    memory.compute("waveforms", ms_before=ms_before, ms_after=ms_after, dtype="float32", progress_bar=False)
    ext = memory.get_extension("waveforms")
    spikes = memory.get_extension("random_spikes").get_random_spikes()
    num_samples = [recording.get_num_samples(segment_index=s) for s in range(recording.get_num_segments())]
    out = UnitWaveforms(nbefore=nbefore, nafter=nafter, in_uv=in_uv,
                        origin={"from": "computed in memory from the recording (SpikeInterface analyzer extensions)",
                                "random_spikes": _plain_params(random_params),
                                "waveforms": _plain_params(ext.params)})
    for k, uid in enumerate(sorting.unit_ids):
        mine = spikes[spikes["unit_index"] == k]
        block = ext.get_waveforms_one_unit(uid)  # (n, samples, channels of the mask, by index)
        columns = [list(np.flatnonzero(mask[k])).index(c) for c in wanted[uid]]
        out.waveforms[uid] = np.ascontiguousarray(np.asarray(block[:, :, columns], dtype=np.float32).transpose(0, 2, 1))
        out.sample_index[uid] = mine["sample_index"].astype(np.int64)
        out.segment_index[uid] = mine["segment_index"].astype(np.int64)
        out.channels[uid] = wanted[uid]
        trains = [sorting.get_unit_spike_train(uid, segment_index=s) for s in range(sorting.get_num_segments())]
        eligible = sum(int(np.sum((t >= max(nbefore, nafter)) & (t < n - max(nbefore, nafter))))
                       for t, n in zip(trains, num_samples))
        out.counts[uid] = {"imported": int(len(mine)), "in_sorting": _spike_count(sorting, uid),
                           "near_edges": _spike_count(sorting, uid) - eligible}
    return out


def _spike_count(sorting, uid) -> int:
    return int(sum(len(sorting.get_unit_spike_train(uid, segment_index=s)) for s in range(sorting.get_num_segments())))


def _plain_params(params: dict) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
