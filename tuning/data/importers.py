"""Labelled spikes from the spike-sorting ecosystem -> a dataset CSV the tool reads.

Two sources, both read with SpikeInterface (the ``[spikeinterface]`` extra):

* a SpikeInterface ``SortingAnalyzer`` folder (``binary_folder`` or ``.zarr``), whose
  recording must still be reachable (or given with ``recording=``);
* a Kilosort / Phy output folder (``params.py``, ``spike_times.npy``, ...), read with
  ``read_phy``; its recording is ``params.py``'s ``dat_path`` (or ``recording=``). Only the
  units whose curated group (Phy's ``cluster_group.tsv``, else Kilosort's ``KSLabel``) is
  in ``groups`` are kept, ``good`` by default.

For every kept unit, up to ``max_spikes_per_unit`` spikes (a seeded random subset, so a rerun
gives the same file) are cut from the recording, ``ms_before`` / ``ms_after`` around the
sorter's spike time (SpikeInterface and Kilosort put it at the spike's peak). Spikes whose
window runs past either end of the recording are left out (counted in the JSON).
Channels: ``"extremum"`` takes each unit's extremum channel (the largest absolute value of
its mean waveform, over up to :data:`TEMPLATE_SPIKES` spikes); an integer K takes that
channel and the K-1 channels nearest to it on the probe (ties by channel order). Columns
are relative to the unit: channel 0 is always the unit's extremum channel, then nearest
first, so a network learns waveform shapes across a neighbourhood, not probe positions.

Output: ``OUTPUT.csv`` with one row per spike, the waveform columns (``s{t}`` for one
channel, ``ch{c}_s{t}`` for several; :mod:`tuning.data.channels`) in microvolts where the
recording knows its gain, and a ``unit`` column holding the unit id (the label); plus
``OUTPUT.json`` beside it: source, sampling rate, window, channels per unit, spike counts.
Both files are written together or not at all, and only after every check passed.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tuning import atomic
from tuning.data.channels import column_names
from tuning.errors import InputError
from tuning.data.splits import min_rows_per_class

__all__ = ["ImportSummary", "import_spikes", "TEMPLATE_SPIKES", "DEFAULT_GROUPS"]

#: Spikes per unit averaged to find its extremum channel.
TEMPLATE_SPIKES = 200
DEFAULT_GROUPS = ("good",)
# A read covers consecutive spikes while it stays under this many samples, so dense spike
# trains are read in blocks and sparse ones spike by spike (never a whole recording at once).
_READ_BLOCK = 65536


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_spikes` wrote."""

    csv_path: Path
    json_path: Path
    kind: str  # "analyzer" | "phy"
    units: tuple[str, ...]
    spike_counts: dict[str, int]
    n_channels: int
    n_samples: int
    sampling_frequency: float


def import_spikes(
    source: str | Path,
    output: str | Path,
    *,
    recording: str | Path | None = None,
    units: Sequence[str | int] | None = None,
    groups: Sequence[str] = DEFAULT_GROUPS,
    max_spikes_per_unit: int | None = 1000,
    ms_before: float = 1.0,
    ms_after: float = 2.0,
    channels: str | int = "extremum",
    seed: int = 0,
    folds: int = 5,
    bandpass: tuple[float, float] | None = None,
) -> ImportSummary:
    """Write ``output`` (a dataset CSV) and its JSON from a sorted session.

    Args:
        source: a SortingAnalyzer folder or a Kilosort/Phy output folder.
        output: the CSV to write (``.csv``); the JSON goes beside it (same stem).
        recording: the recording, when the source's own reference is gone or moved: a
            SpikeInterface-saved recording folder, or a raw binary file read with the Phy
            folder's ``params.py`` (channels, dtype, offset, sampling rate).
        units: unit ids to keep (as given by the sorter); default all (after ``groups``).
        groups: Phy/Kilosort curation groups to keep (Phy folders only).
        max_spikes_per_unit: at most this many spikes per unit, a seeded random subset;
            ``None`` keeps every spike.
        ms_before, ms_after: the window around each spike time, in milliseconds.
        channels: ``"extremum"`` or an integer K >= 1 (the K nearest channels).
        seed: seeds the spike subset.
        folds: the cross-validation folds the dataset must support (every unit needs
            ``tuning.data.splits.min_rows_per_class(folds)`` spikes).
        bandpass: ``(low_hz, high_hz)``: filter the recording first (raw Kilosort ``.dat``
            files are unfiltered); ``None`` reads it as it is.

    Raises:
        InputError: a source that is neither kind, a missing recording, no unit left after
            the group or unit filter, a unit with too few spikes, bad options. Nothing is
            written then.
    """
    source, output = Path(source).expanduser(), Path(output).expanduser()
    n_nearest = _check_options(output, channels, ms_before, ms_after, max_spikes_per_unit, folds, bandpass)
    si = _spikeinterface()
    kind = _source_kind(source)
    if kind == "analyzer":
        sorting, rec = _open_analyzer(si, source, recording)
        group_filter = None
    else:
        sorting, rec = _open_phy(si, source, recording)
        sorting, group_filter = _filter_groups(source, sorting, groups)
    if bandpass is not None:
        import spikeinterface.preprocessing as spre

        rec = spre.bandpass_filter(rec, freq_min=float(bandpass[0]), freq_max=float(bandpass[1]))
    fs = float(rec.get_sampling_frequency())
    if abs(fs - float(sorting.get_sampling_frequency())) > 1e-6 * fs:
        raise InputError(f"{source}: the sorting's sampling rate ({sorting.get_sampling_frequency()} Hz) is not "
                         f"the recording's ({fs} Hz); give the recording that was sorted with --recording")
    if sorting.get_num_segments() != rec.get_num_segments():
        raise InputError(f"{source}: the sorting has {sorting.get_num_segments()} segments, the recording "
                         f"{rec.get_num_segments()}; give the recording that was sorted with --recording")
    unit_ids = _select_units(source, sorting, units, group_filter)

    nbefore = int(round(ms_before * fs / 1000.0))
    nafter = int(round(ms_after * fs / 1000.0))
    if nbefore + nafter < 2:
        raise InputError(f"the window {ms_before} + {ms_after} ms is under 2 samples at {fs:g} Hz; widen it")
    n_rec_channels = rec.get_num_channels()
    if n_nearest is not None and n_nearest > n_rec_channels:
        raise InputError(f"--channels {n_nearest} asks for more channels than the recording has ({n_rec_channels})")

    rng = np.random.default_rng(seed)
    spikes = {}  # unit -> (segment array, frame array) of the chosen spikes
    totals, dropped = {}, {}
    for uid in unit_ids:
        seg, frames = _unit_spikes(sorting, rec, uid, nbefore, nafter)
        totals[uid] = int(sum(len(sorting.get_unit_spike_train(uid, segment_index=s))
                              for s in range(sorting.get_num_segments())))
        dropped[uid] = totals[uid] - len(frames)
        if max_spikes_per_unit is not None and len(frames) > max_spikes_per_unit:
            keep = np.sort(rng.choice(len(frames), size=max_spikes_per_unit, replace=False))
            seg, frames = seg[keep], frames[keep]
        spikes[uid] = (seg, frames)

    need = min_rows_per_class(folds)
    small = [(uid, len(spikes[uid][1])) for uid in unit_ids if len(spikes[uid][1]) < need]
    if small:
        listed = ", ".join(f"unit {uid} has {n}" for uid, n in small)
        raise InputError(
            f"{source}: {listed} spike(s) inside the recording; every unit needs at least {need} for "
            f"{folds}-fold cross-validation: leave it out with --units, or use fewer --folds"
        )
    if len(unit_ids) < 2:
        raise InputError(f"{source}: only unit {unit_ids[0]} is left; a classifier needs at least two units "
                         "(check --units and --groups)")

    channel_of = _unit_channels(rec, spikes, unit_ids, nbefore, nafter, n_nearest, rng)
    n_channels = 1 if n_nearest is None else n_nearest
    waveforms = {uid: _read_windows(rec, *spikes[uid], nbefore, nafter, channel_of[uid]) for uid in unit_ids}

    in_uv = bool(rec.has_scaleable_traces())
    header = column_names(n_channels, nbefore + nafter) + ["unit"]
    csv_text = _csv_text(header, unit_ids, waveforms)
    channel_ids = rec.get_channel_ids()
    record = {
        "source": str(source.resolve()),
        "kind": kind,
        "recording": _describe(rec),
        "sampling_frequency": fs,
        "units_of_values": "uV" if in_uv else "raw (the recording has no gain to microvolts)",
        "bandpass_hz": list(bandpass) if bandpass is not None else None,
        "window_ms": {"before": ms_before, "after": ms_after},
        "window_samples": {"before": nbefore, "after": nafter, "total": nbefore + nafter},
        "channels": {"mode": "extremum" if n_nearest is None else "nearest", "count": n_channels,
                     "per_unit": {str(uid): [_plain(channel_ids[c]) for c in channel_of[uid]] for uid in unit_ids}},
        "groups": list(groups) if kind == "phy" else None,
        "units": [str(uid) for uid in unit_ids],
        "spike_counts": {str(uid): {"imported": int(len(spikes[uid][1])), "in_sorting": totals[uid],
                                    "outside_recording": dropped[uid]} for uid in unit_ids},
        "max_spikes_per_unit": max_spikes_per_unit,
        "seed": seed,
        "label_column": "unit",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"spikeinterface": si.__version__},
    }
    json_path = output.with_suffix(".json")
    atomic.write_all({output: csv_text.encode("utf-8"),
                      json_path: (json.dumps(record, indent=2) + "\n").encode("utf-8")})
    return ImportSummary(output.resolve(), json_path.resolve(), kind, tuple(str(u) for u in unit_ids),
                         {str(uid): int(len(spikes[uid][1])) for uid in unit_ids}, n_channels,
                         nbefore + nafter, fs)


# --------------------------------------------------------------------------------------
# Checks and sources
# --------------------------------------------------------------------------------------


def _check_options(output: Path, channels, ms_before, ms_after, max_spikes, folds, bandpass) -> int | None:
    """Validate the options; returns K for nearest channels, None for the extremum channel."""
    if output.suffix.lower() != ".csv":
        raise InputError(f"{output}: the output must be a .csv file (the dataset the tool reads)")
    if output.exists() and not output.is_file():
        raise InputError(f"{output}: exists and is not a file")
    if ms_before < 0 or ms_after <= 0:
        raise InputError(f"the window must have ms_before >= 0 and ms_after > 0, got {ms_before} and {ms_after}")
    if max_spikes is not None and max_spikes < 1:
        raise InputError(f"--max-spikes must be at least 1, got {max_spikes}")
    if folds < 2:
        raise InputError(f"--folds must be at least 2, got {folds}")
    if bandpass is not None and not 0 < bandpass[0] < bandpass[1]:
        raise InputError(f"--bandpass needs 0 < LOW < HIGH, got {bandpass[0]},{bandpass[1]}")
    if isinstance(channels, str) and channels.strip().lower() == "extremum":
        return None
    try:
        k = int(channels)
    except (TypeError, ValueError):
        raise InputError(f"--channels must be 'extremum' or a number of nearest channels, got {channels!r}") from None
    if k < 1:
        raise InputError(f"--channels must be at least 1, got {k}")
    return None if k == 1 else k


def _spikeinterface():
    try:
        import spikeinterface
        import spikeinterface.core  # noqa: F401
    except ImportError:
        raise InputError('importing from a sorter needs SpikeInterface: pip install -e ".[spikeinterface]"') from None
    return spikeinterface


def _source_kind(source: Path) -> str:
    if not source.exists():
        raise InputError(f"{source}: not found; give a SortingAnalyzer folder or a Kilosort/Phy output folder")
    if not source.is_dir():
        raise InputError(f"{source}: is not a folder; give a SortingAnalyzer folder or a Kilosort/Phy output folder")
    info = source / "spikeinterface_info.json"
    if info.is_file():
        try:
            kind = json.loads(info.read_text()).get("object")
        except (ValueError, OSError):
            kind = None
        if kind == "SortingAnalyzer":
            return "analyzer"
        raise InputError(f"{source}: is a SpikeInterface {kind or 'object'} folder, not a SortingAnalyzer; "
                         "save the analyzer (create_sorting_analyzer(...).save_as(folder=...)) and import that")
    if (source / "si_folder.json").is_file():  # a saved recording or sorting
        try:
            kind = json.loads((source / "si_folder.json").read_text()).get("class", "").rsplit(".", 1)[-1]
        except (ValueError, OSError, AttributeError):
            kind = ""
        raise InputError(f"{source}: is a saved SpikeInterface {kind or 'object'} folder, not a SortingAnalyzer; "
                         "import the analyzer folder (or give this recording with --recording)")
    if source.suffix == ".zarr" and (source / ".zattrs").is_file():
        return "analyzer"
    if (source / "params.py").is_file() and (source / "spike_times.npy").is_file():
        return "phy"
    raise InputError(
        f"{source}: is neither a SpikeInterface SortingAnalyzer folder (no spikeinterface_info.json) nor a "
        "Kilosort/Phy output folder (no params.py with spike_times.npy); give the folder the sorter or "
        "SpikeInterface wrote"
    )


def _open_analyzer(si, source: Path, recording):
    import spikeinterface.core as sc

    try:
        analyzer = sc.load_sorting_analyzer(source, load_extensions=False)
    except Exception as exc:  # a damaged folder: say which, not a traceback
        raise InputError(f"{source}: cannot be read as a SortingAnalyzer ({type(exc).__name__}: {exc})") from None
    if recording is not None:
        return analyzer.sorting, _load_recording(si, Path(recording).expanduser(), None)
    if not analyzer.has_recording():
        raise InputError(
            f"{source}: the analyzer's recording cannot be found (moved or deleted since the analyzer "
            "was saved); give it with --recording (a SpikeInterface-saved recording folder)"
        )
    return analyzer.sorting, analyzer.recording


def _open_phy(si, source: Path, recording):
    import spikeinterface.extractors as se

    try:
        sorting = se.read_phy(source, load_all_cluster_properties=True)
    except Exception as exc:
        raise InputError(f"{source}: cannot be read as a Phy/Kilosort folder ({type(exc).__name__}: {exc})") from None
    params = _read_params(source)
    if recording is not None:
        rec = _load_recording(si, Path(recording).expanduser(), params)
    else:
        dat = params.get("dat_path")
        if isinstance(dat, (list, tuple)):
            dat = dat[0] if len(dat) == 1 else None
        if not dat or str(dat) == "None":
            raise InputError(f"{source}: params.py names no recording (dat_path); give it with --recording")
        path = Path(str(dat)).expanduser()
        path = path if path.is_absolute() else source / path
        if not path.is_file():
            raise InputError(f"{source}: the recording {path} named by params.py (dat_path) is missing; "
                             "give its current location with --recording")
        rec = _load_recording(si, path, params)
    rec = _with_phy_geometry(source, rec)
    return sorting, rec


def _read_params(source: Path) -> dict:
    params: dict = {}
    try:
        exec(compile((source / "params.py").read_text(), str(source / "params.py"), "exec"), {}, params)
    except Exception as exc:
        raise InputError(f"{source / 'params.py'}: cannot be read ({type(exc).__name__}: {exc})") from None
    return params


def _load_recording(si, path: Path, params: dict | None):
    """A SpikeInterface-saved recording folder, or a raw binary file described by ``params``."""
    import spikeinterface.core as sc

    if not path.exists():
        raise InputError(f"{path}: recording not found; check the --recording path")
    if path.is_dir():
        try:
            return sc.load(path)
        except Exception as exc:
            raise InputError(f"{path}: cannot be read as a SpikeInterface recording folder "
                             f"({type(exc).__name__}: {exc})") from None
    if params is None:
        raise InputError(f"{path}: a raw binary file needs a Phy params.py to describe it; for an analyzer "
                         "give a SpikeInterface-saved recording folder")
    try:
        return sc.read_binary(path, sampling_frequency=float(params["sample_rate"]), dtype=params["dtype"],
                              num_channels=int(params["n_channels_dat"]), file_offset=int(params.get("offset", 0)))
    except KeyError as exc:
        raise InputError(f"params.py lacks {exc.args[0]!r}, needed to read {path}") from None


def _with_phy_geometry(source: Path, rec):
    """Kilosort's channel_map / channel_positions: the sorted channels and where they sit."""
    cmap, cpos = source / "channel_map.npy", source / "channel_positions.npy"
    if cmap.is_file() and len(np.load(cmap).ravel()) < rec.get_num_channels():
        rec = rec.select_channels(rec.get_channel_ids()[np.load(cmap).ravel().astype(int)])
    if rec.get_property("location") is None and cpos.is_file():
        positions = np.load(cpos)
        if len(positions) == rec.get_num_channels():
            rec.set_dummy_probe_from_locations(positions)
    return rec


def _group_values(sorting):
    """(name, values) of the curation label: Phy's group, else Kilosort's KSLabel."""
    for key in ("quality", "KSLabel"):
        values = sorting.get_property(key)
        if values is not None:
            return key, np.asarray(values).astype(str)
    return None, None


def _filter_groups(source: Path, sorting, groups: Sequence[str]):
    wanted = {g.strip().lower() for g in groups}
    key, values = _group_values(sorting)
    if values is None:
        values = np.array(["unsorted"] * len(sorting.unit_ids))
    keep = [uid for uid, v in zip(sorting.unit_ids, values) if v.lower() in wanted]
    if not keep:
        present = {}
        for v in values:
            present[v] = present.get(v, 0) + 1
        listed = ", ".join(f"{v} ({n} unit{'s' if n > 1 else ''})" for v, n in sorted(present.items()))
        raise InputError(
            f"{source}: no unit is in group {', '.join(sorted(wanted))}; the groups here are {listed or 'none'}: "
            "choose with --groups (e.g. --groups good,mua) or curate the units in Phy first"
        )
    return sorting.select_units(keep), {str(u): str(v) for u, v in zip(sorting.unit_ids, values)}


def _select_units(source: Path, sorting, units, group_filter) -> list:
    ids = list(sorting.unit_ids)
    if not ids:
        raise InputError(f"{source}: the sorting has no units")
    if units is None:
        return ids
    by_name = {str(u): u for u in ids}
    chosen, missing = [], []
    for u in units:
        key = str(u).strip()
        if key in by_name:
            chosen.append(by_name[key])
        else:
            missing.append(key)
    if missing:
        hint = ""
        if group_filter is not None and any(m in group_filter for m in missing):
            hint = " (" + ", ".join(f"unit {m} is in group {group_filter[m]}" for m in missing if m in group_filter) + \
                   "; add that group with --groups)"
        raise InputError(f"{source}: unit(s) {', '.join(missing)} not found{hint}; the units are "
                         f"{', '.join(by_name)}")
    return list(dict.fromkeys(chosen))


# --------------------------------------------------------------------------------------
# Spikes, channels, waveforms
# --------------------------------------------------------------------------------------


def _unit_spikes(sorting, rec, uid, nbefore: int, nafter: int):
    """(segment, frame) of every spike of ``uid`` whose window lies inside the recording."""
    segs, frames = [], []
    for s in range(sorting.get_num_segments()):
        train = np.asarray(sorting.get_unit_spike_train(uid, segment_index=s), dtype=np.int64)
        n = rec.get_num_samples(segment_index=s)
        train = train[(train - nbefore >= 0) & (train + nafter <= n)]
        segs.append(np.full(len(train), s, dtype=np.int64))
        frames.append(train)
    return np.concatenate(segs), np.concatenate(frames)


def _unit_channels(rec, spikes, unit_ids, nbefore, nafter, n_nearest, rng) -> dict:
    """Channel indices per unit: [extremum] or the n_nearest nearest to it, extremum first."""
    all_channels = np.arange(rec.get_num_channels())
    locations = None
    if n_nearest is not None:
        try:
            locations = np.asarray(rec.get_channel_locations(), dtype=np.float64)
        except Exception:
            locations = None
        if locations is None or len(locations) != len(all_channels):
            raise InputError("the recording has no probe geometry (channel locations); attach a probe to it "
                             "or use --channels extremum")
    chosen = {}
    for uid in unit_ids:
        seg, frames = spikes[uid]
        pick = rng.choice(len(frames), size=min(TEMPLATE_SPIKES, len(frames)), replace=False)
        mean = _read_windows(rec, seg[pick], frames[pick], nbefore, nafter, all_channels).mean(axis=0)
        extremum = int(np.argmax(np.abs(mean).max(axis=1)))
        if n_nearest is None:
            chosen[uid] = np.array([extremum])
        else:
            distance = np.linalg.norm(locations - locations[extremum], axis=1)
            chosen[uid] = np.argsort(distance, kind="stable")[:n_nearest]
    return chosen


def _read_windows(rec, segments, frames, nbefore, nafter, channel_indices) -> np.ndarray:
    """float32 ``(n_spikes, n_channels, nbefore + nafter)``, in uV where the recording can scale."""
    channel_ids = rec.get_channel_ids()[np.asarray(channel_indices)]
    in_uv = bool(rec.has_scaleable_traces())
    width = nbefore + nafter
    out = np.empty((len(frames), len(channel_ids), width), dtype=np.float32)
    for s in np.unique(segments):
        rows = np.flatnonzero(segments == s)
        rows = rows[np.argsort(frames[rows], kind="stable")]
        i = 0
        while i < len(rows):
            start = int(frames[rows[i]]) - nbefore
            j = i + 1  # the block: following spikes whose window ends within _READ_BLOCK of start
            while j < len(rows) and int(frames[rows[j]]) + nafter - start <= _READ_BLOCK:
                j += 1
            end = int(frames[rows[j - 1]]) + nafter
            traces = rec.get_traces(segment_index=int(s), start_frame=start, end_frame=end,
                                    channel_ids=channel_ids, return_in_uV=in_uv)
            for r in rows[i:j]:
                offset = int(frames[r]) - nbefore - start
                out[r] = traces[offset:offset + width].T
            i = j
    return out


def _csv_text(header: list[str], unit_ids, waveforms: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for uid in unit_ids:
        flat = waveforms[uid].reshape(len(waveforms[uid]), -1)  # channel-major rows
        label = io.StringIO()
        csv.writer(label, lineterminator="\n").writerow([str(uid)])  # quoted if it needs it
        # savetxt formats whole rows at once; the label ends every row of this unit.
        np.savetxt(buffer, flat, fmt="%.3f", delimiter=",", newline="," + label.getvalue())
    return buffer.getvalue()


def _describe(rec) -> str:
    kwargs = getattr(rec, "_kwargs", {}) or {}
    for key in ("file_paths", "folder_path", "file_path"):
        if key in kwargs:
            value = kwargs[key]
            return str(value[0] if isinstance(value, (list, tuple)) and len(value) == 1 else value)
    return f"{type(rec).__name__}, {rec.get_num_channels()} channels, {rec.get_total_duration():.1f} s"


def _plain(value):
    """A channel id as a JSON value (numpy scalars are not serialisable)."""
    return value.item() if hasattr(value, "item") else value
