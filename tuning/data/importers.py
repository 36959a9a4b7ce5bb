"""Labelled spikes from the spike-sorting ecosystem -> a dataset CSV the tool reads.

Two sources, both read with SpikeInterface (the ``[spikeinterface]`` extra):

* a SpikeInterface ``SortingAnalyzer`` folder (``binary_folder`` or ``.zarr``). When it has
  the ``waveforms`` extension (with ``random_spikes``) computed, its waveforms are the
  dataset, with or without the raw recording (labs share analyzers without it). Otherwise
  its recording (still where it was, or ``recording=``) is needed, and the extension is
  computed in memory;
* a Kilosort / Phy output folder (``params.py``, ``spike_times.npy``, ...), read with
  ``read_phy``; its recording is ``params.py``'s ``dat_path`` (or ``recording=``). Only the
  units whose curated group (Phy's ``cluster_group.tsv``, else Kilosort's ``KSLabel``) is
  in ``groups`` are kept, ``good`` by default.

Waveforms come from SpikeInterface's own extensions, never from window-cutting code of ours
(:mod:`tuning.data.spike_waveforms`): ``random_spikes`` picks up to ``max_spikes_per_unit``
spikes per unit (seeded, so a rerun gives the same file) and ``waveforms`` cuts ``ms_before``
/ ``ms_after`` around each spike time (the spike's peak for SpikeInterface and Kilosort).
From an existing extension, the window may be cut narrower than the extension's, not wider,
and the spikes are the extension's random spikes (fewer with a smaller ``max_spikes_per_unit``).
Spikes whose window would run past either end of their segment are left out (counted in the
JSON). Channels: ``"extremum"`` takes each unit's main channel (SpikeInterface's, largest
absolute template value); an integer K takes that channel and the K-1 channels nearest to it
on the probe. Columns are relative to the unit: channel 0 is always the unit's main channel,
then nearest first, so a network learns waveform shapes across a neighbourhood, not probe
positions.

Output: ``OUTPUT.csv`` with one row per spike, the waveform columns (``s{t}`` for one
channel, ``ch{c}_s{t}`` for several; :mod:`tuning.data.channels`) in microvolts where the
recording knows its gain, the metadata column ``sample_index`` (the spike's sample in its
segment; ``segment_index`` too when there are several), which training skips and ``predict``
copies beside each prediction, and a ``unit`` column holding the unit id (the label); plus
``OUTPUT.json`` beside it: source, where the waveforms came from and the extensions'
parameters, sampling rate, window, channels per unit, spike counts. Both files are written
together or not at all, and only after every check passed.
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
from tuning.data import spike_waveforms
from tuning.data.channels import column_names
from tuning.data.splits import min_rows_per_class
from tuning.errors import InputError

__all__ = ["ImportSummary", "import_spikes", "DEFAULT_GROUPS", "DEFAULT_WINDOW_MS"]

DEFAULT_GROUPS = ("good",)
#: (ms before, ms after) each spike when the waveforms are computed and no window is given.
DEFAULT_WINDOW_MS = (1.0, 2.0)


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
    waveforms_from: str  # "extension" (the analyzer's own) | "computed" (from the recording)


def import_spikes(
    source: str | Path,
    output: str | Path,
    *,
    recording: str | Path | None = None,
    units: Sequence[str | int] | None = None,
    groups: Sequence[str] = DEFAULT_GROUPS,
    max_spikes_per_unit: int | None = 1000,
    ms_before: float | None = None,
    ms_after: float | None = None,
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
            ``None`` keeps every spike (every one the analyzer's extension holds).
        ms_before, ms_after: the window around each spike time, in milliseconds; ``None``:
            the analyzer's ``waveforms`` extension's own, else :data:`DEFAULT_WINDOW_MS`.
        channels: ``"extremum"`` or an integer K >= 1 (the K nearest channels).
        seed: seeds the spike subset.
        folds: the cross-validation folds the dataset must support (every unit needs
            ``tuning.data.splits.min_rows_per_class(folds)`` spikes).
        bandpass: ``(low_hz, high_hz)``: filter the recording first (raw Kilosort ``.dat``
            files are unfiltered); ``None`` reads it as it is. Needs the recording.

    Raises:
        InputError: a source that is neither kind, an analyzer with neither its waveforms
            extension nor its recording, no unit left after the group or unit filter, a unit
            with too few spikes, bad options. Nothing is written then.
    """
    source, output = Path(source).expanduser(), Path(output).expanduser()
    n_nearest = _check_options(output, channels, ms_before, ms_after, max_spikes_per_unit, folds, bandpass)
    si = _spikeinterface()
    kind = _source_kind(source)
    analyzer = None
    if kind == "analyzer":
        analyzer, rec = _open_analyzer(si, source, recording)
        sorting, group_filter = analyzer.sorting, None
    else:
        sorting, rec = _open_phy(si, source, recording)
        sorting, group_filter = _filter_groups(source, sorting, groups)
    if rec is not None:
        if bandpass is not None:
            import spikeinterface.preprocessing as spre

            rec = spre.bandpass_filter(rec, freq_min=float(bandpass[0]), freq_max=float(bandpass[1]))
        _check_recording_matches(source, sorting, rec)
    unit_ids = _select_units(source, sorting, units, group_filter)
    fs = float(sorting.get_sampling_frequency())
    n_channels_there = rec.get_num_channels() if rec is not None else len(analyzer.channel_ids)
    if n_nearest is not None and n_nearest > n_channels_there:
        raise InputError(f"--channels {n_nearest} asks for more channels than the recording has ({n_channels_there})")

    found = _waveforms(source, analyzer, sorting, rec, unit_ids, n_nearest, ms_before, ms_after,
                       max_spikes_per_unit, seed, bandpass, fs)

    need = min_rows_per_class(folds)
    counts = {uid: found.counts[uid]["imported"] for uid in unit_ids}
    small = [(uid, n) for uid, n in counts.items() if n < need]
    if small:
        listed = ", ".join(f"unit {uid} has {n}" for uid, n in small)
        raise InputError(
            f"{source}: {listed} spike(s) inside the recording; every unit needs at least {need} for "
            f"{folds}-fold cross-validation: leave it out with --units, or use fewer --folds"
        )
    if len(unit_ids) < 2:
        raise InputError(f"{source}: only unit {unit_ids[0]} is left; a classifier needs at least two units "
                         "(check --units and --groups)")

    n_channels = 1 if n_nearest is None else n_nearest
    width = found.nbefore + found.nafter
    segments = sorting.get_num_segments() > 1
    metadata = ["sample_index", *(["segment_index"] if segments else [])]
    header = column_names(n_channels, width) + metadata + ["unit"]
    csv_text = _csv_text(header, unit_ids, found, segments)
    channel_ids = analyzer.channel_ids if analyzer is not None else rec.get_channel_ids()
    record = {
        "source": str(source.resolve()),
        "kind": kind,
        "recording": _describe(rec) if rec is not None else None,
        "waveforms": found.origin,
        "sampling_frequency": fs,
        "units_of_values": "uV" if found.in_uv else "raw (the recording has no gain to microvolts)",
        "bandpass_hz": list(bandpass) if bandpass is not None else None,
        "window_ms": {"before": 1000.0 * found.nbefore / fs, "after": 1000.0 * found.nafter / fs},
        "window_samples": {"before": found.nbefore, "after": found.nafter, "total": width},
        "channels": {"mode": "extremum" if n_nearest is None else "nearest", "count": n_channels,
                     "per_unit": {str(uid): [_plain(channel_ids[c]) for c in found.channels[uid]]
                                  for uid in unit_ids}},
        "groups": list(groups) if kind == "phy" else None,
        "units": [str(uid) for uid in unit_ids],
        "spike_counts": {str(uid): found.counts[uid] for uid in unit_ids},
        "max_spikes_per_unit": max_spikes_per_unit,
        "seed": seed,
        "label_column": "unit",
        "metadata_columns": metadata,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"spikeinterface": si.__version__},
    }
    json_path = output.with_suffix(".json")
    atomic.write_all({output: csv_text.encode("utf-8"),
                      json_path: (json.dumps(record, indent=2) + "\n").encode("utf-8")})
    return ImportSummary(output.resolve(), json_path.resolve(), kind, tuple(str(u) for u in unit_ids),
                         {str(uid): counts[uid] for uid in unit_ids}, n_channels, width, fs,
                         "extension" if found.origin["from"].startswith("the analyzer") else "computed")


def _waveforms(source, analyzer, sorting, rec, unit_ids, n_nearest, ms_before, ms_after, max_spikes, seed,
               bandpass, fs) -> spike_waveforms.UnitWaveforms:
    """From the analyzer's extension when it has one that serves the request, else computed
    from the recording; InputError with the ways out when neither can be done."""
    nbefore = None if ms_before is None else spike_waveforms.samples(ms_before, fs)
    nafter = None if ms_after is None else spike_waveforms.samples(ms_after, fs)
    has_extension = analyzer is not None and analyzer.has_extension("waveforms") and \
        analyzer.has_extension("random_spikes")
    if has_extension:
        why_not = ("--bandpass filters the recording, not the waveforms the extension holds" if bandpass else
                   spike_waveforms.extension_mismatch(analyzer, unit_ids, n_nearest, nbefore, nafter))
        if why_not is None:
            return spike_waveforms.from_extension(analyzer, unit_ids, n_nearest, nbefore, nafter, max_spikes, seed)
        if rec is None:
            raise InputError(f"{source}: {why_not}; and the analyzer's recording cannot be found (moved or deleted "
                             "since it was saved) to compute others: give it with --recording, or ask for what the "
                             "extension holds")
    if rec is None:
        raise InputError(
            f"{source}: the analyzer has no waveforms extension and its recording cannot be found (moved or deleted "
            "since it was saved); either compute the extension where the recording is (analyzer.compute(["
            "'random_spikes', 'waveforms'])) and share that analyzer, or give the recording with --recording "
            "(a SpikeInterface-saved recording folder)"
        )
    before = DEFAULT_WINDOW_MS[0] if ms_before is None else ms_before
    after = DEFAULT_WINDOW_MS[1] if ms_after is None else ms_after
    if spike_waveforms.samples(before, fs) + spike_waveforms.samples(after, fs) < 2:
        raise InputError(f"the window {before} + {after} ms is under 2 samples at {fs:g} Hz; widen it")
    return spike_waveforms.compute(sorting, rec, unit_ids, n_nearest, before, after, max_spikes, seed, analyzer)


def _check_recording_matches(source: Path, sorting, rec) -> None:
    fs = float(rec.get_sampling_frequency())
    if abs(fs - float(sorting.get_sampling_frequency())) > 1e-6 * fs:
        raise InputError(f"{source}: the sorting's sampling rate ({sorting.get_sampling_frequency()} Hz) is not "
                         f"the recording's ({fs} Hz); give the recording that was sorted with --recording")
    if sorting.get_num_segments() != rec.get_num_segments():
        raise InputError(f"{source}: the sorting has {sorting.get_num_segments()} segments, the recording "
                         f"{rec.get_num_segments()}; give the recording that was sorted with --recording")


# --------------------------------------------------------------------------------------
# Checks and sources
# --------------------------------------------------------------------------------------


def _check_options(output: Path, channels, ms_before, ms_after, max_spikes, folds, bandpass) -> int | None:
    """Validate the options; returns K for nearest channels, None for the extremum channel."""
    if output.suffix.lower() != ".csv":
        raise InputError(f"{output}: the output must be a .csv file (the dataset the tool reads)")
    if output.exists() and not output.is_file():
        raise InputError(f"{output}: exists and is not a file")
    if (ms_before is not None and ms_before < 0) or (ms_after is not None and ms_after <= 0):
        raise InputError(f"the window must have --ms-before >= 0 and --ms-after > 0, got {ms_before} and {ms_after}")
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
    """``(analyzer, recording or None)``: read-only, so the lab's folder is never written to."""
    import spikeinterface.core as sc

    try:
        analyzer = sc.load_sorting_analyzer(source, load_extensions=False, read_only=True)
    except Exception as exc:  # a damaged folder: say which, not a traceback
        raise InputError(f"{source}: cannot be read as a SortingAnalyzer ({type(exc).__name__}: {exc})") from None
    if recording is not None:
        return analyzer, _load_recording(si, Path(recording).expanduser(), None)
    return analyzer, analyzer.recording if analyzer.has_recording() else None


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
# Writing
# --------------------------------------------------------------------------------------


def _csv_text(header: list[str], unit_ids, found: spike_waveforms.UnitWaveforms, segments: bool) -> str:
    """The dataset's text: per unit, its spikes in time order, waveform channel-major then
    the metadata (sample index, segment index when ``segments``) and the unit id."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for uid in unit_ids:
        waveforms = found.waveforms[uid]
        flat = waveforms.reshape(len(waveforms), -1)  # channel-major rows
        label = io.StringIO()
        csv.writer(label, lineterminator="\n").writerow([str(uid)])  # quoted if it needs it
        where = [found.sample_index[uid], *([found.segment_index[uid]] if segments else [])]
        # savetxt formats whole rows at once; the label ends every row of this unit.
        np.savetxt(buffer, np.column_stack([flat, *where]), fmt=["%.3f"] * flat.shape[1] + ["%d"] * len(where),
                   delimiter=",", newline="," + label.getvalue())
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
