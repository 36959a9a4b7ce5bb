"""`python -m tuning import`: labelled spikes from a SpikeInterface SortingAnalyzer and from a
Phy/Kilosort folder, checked against ground truth that SpikeInterface generates here, then
tuned (a tiny search) on each import; an analyzer shared without its recording, read from its
own waveforms extension, and the extension computed from a recording, both checked against
SpikeInterface's own arrays (issue 27); and the bad-input cases (one error line, exit 2,
nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("spikeinterface")  # the [test] extra installs it; plain installs skip
# Saving a generated recording cannot record its provenance; irrelevant here.
pytestmark = pytest.mark.filterwarnings("ignore:The extractor is not serializable")

import spikeinterface.core as sc  # noqa: E402
import spikeinterface.exporters as sx  # noqa: E402

from tuning.cli import main  # noqa: E402
from tuning.data.readers import load_dataset  # noqa: E402
from tuning.errors import InputError  # noqa: E402
from tuning.data.importers import import_spikes  # noqa: E402

FS = 20_000.0
N_CHANNELS, N_UNITS = 8, 4
NOISE_UNIT = "3"  # curated as noise in the Phy folder
MS_BEFORE, MS_AFTER = 1.0, 2.0
NBEFORE, NAFTER = 20, 40  # the window in samples at FS
MARGIN = max(NBEFORE, NAFTER)  # random_spikes' margin_size: no window past a segment's edge


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A sorted session built from SpikeInterface's ground truth: the saved recording, an
    analyzer folder, a Phy folder (unit 3 curated as noise), the ground-truth sorting and
    the analyzer (for its templates)."""
    base = tmp_path_factory.mktemp("session")
    recording, truth = sc.generate_ground_truth_recording(
        durations=[20.0], sampling_frequency=FS, num_channels=N_CHANNELS, num_units=N_UNITS, seed=3,
        generate_sorting_kwargs=dict(firing_rates=5.0, refractory_period_ms=4.0),
        noise_kwargs=dict(noise_levels=5.0, strategy="tile_pregenerated"))
    recording = recording.save(folder=base / "recording", verbose=False)
    analyzer = sc.create_sorting_analyzer(truth, recording, format="binary_folder", folder=base / "analyzer",
                                          sparse=False)
    analyzer.compute(["random_spikes", "templates"], verbose=False)
    sx.export_to_phy(analyzer, base / "phy", compute_pc_features=False, compute_amplitudes=False,
                     copy_binary=True, verbose=False)
    # Curation in Phy: the last unit is noise, the others good.
    groups = ["noise" if str(u) == NOISE_UNIT else "good" for u in analyzer.unit_ids]
    pd.DataFrame({"cluster_id": range(N_UNITS), "group": groups}).to_csv(
        base / "phy" / "cluster_group.tsv", sep="\t", index=False)
    return {"base": base, "recording": recording, "truth": truth, "analyzer": analyzer,
            "analyzer_dir": base / "analyzer", "phy_dir": base / "phy"}


def expected_counts(session, units) -> dict[str, int]:
    """Ground-truth spikes per unit that SpikeInterface's random_spikes may pick with a margin
    of MARGIN samples (its rule: MARGIN <= sample < n - MARGIN)."""
    n = session["recording"].get_num_samples()
    counts = {}
    for u in units:
        train = session["truth"].get_unit_spike_train(u)
        counts[str(u)] = int(np.sum((train >= MARGIN) & (train < n - MARGIN)))
    return counts


@pytest.fixture(scope="module")
def imported(session):
    """Both sources imported with 4 nearest channels and every spike."""
    out = session["base"] / "data"
    kwargs = dict(channels=4, max_spikes_per_unit=None, ms_before=MS_BEFORE, ms_after=MS_AFTER)
    return {"analyzer": import_spikes(session["analyzer_dir"], out / "GTA.csv", **kwargs),
            "phy": import_spikes(session["phy_dir"], out / "GTP.csv", **kwargs)}


def test_analyzer_import_matches_ground_truth(session, imported):
    summary = imported["analyzer"]
    truth = session["truth"]
    dataset = load_dataset(summary.csv_path)  # the tool reads it unchanged
    assert dataset.n_channels == 4 and dataset.length == NBEFORE + NAFTER
    assert dataset.label_column == "unit"
    assert list(dataset.class_names) == [str(u) for u in truth.unit_ids]
    counts = expected_counts(session, truth.unit_ids)
    assert dict(zip(dataset.class_names, dataset.class_counts.tolist())) == counts
    assert sum(counts.values()) >= 0.95 * sum(len(truth.get_unit_spike_train(u)) for u in truth.unit_ids)

    record = json.loads(summary.json_path.read_text())
    assert record["kind"] == "analyzer" and record["sampling_frequency"] == FS
    assert record["waveforms"]["from"].startswith("computed in memory")  # the analyzer has no waveforms
    assert record["window_samples"] == {"before": NBEFORE, "after": NAFTER, "total": NBEFORE + NAFTER}
    assert record["units"] == [str(u) for u in truth.unit_ids]
    assert {u: c["imported"] for u, c in record["spike_counts"].items()} == counts

    # Each unit's first row is its first spike, cut from the recording on its 4 channels: the
    # unit's extremum channel (largest absolute template value) first, then the nearest.
    templates = session["analyzer"].get_extension("templates").get_data()  # (units, samples, channels)
    extremum = dict(zip(truth.unit_ids, session["recording"].get_channel_ids()[
        np.abs(templates).max(axis=1).argmax(axis=1)]))
    rec = session["recording"]
    locations = rec.get_channel_locations()
    for u in truth.unit_ids:
        channels = record["channels"]["per_unit"][str(u)]
        assert len(channels) == 4 and str(channels[0]) == str(extremum[u])
        index = [list(map(str, rec.get_channel_ids())).index(str(c)) for c in channels]
        distance = np.linalg.norm(locations - locations[index[0]], axis=1)
        assert sorted(distance[index]) == sorted(distance)[:4] and list(distance[index]) == sorted(distance[index])
        frame = int(truth.get_unit_spike_train(u)[truth.get_unit_spike_train(u) >= MARGIN][0])
        raw = rec.get_traces(start_frame=frame - NBEFORE, end_frame=frame + NAFTER,
                             channel_ids=np.array(channels, dtype=rec.get_channel_ids().dtype),
                             return_in_uV=True)
        row = dataset.X[np.flatnonzero(dataset.y == dataset.label_map()[str(u)])[0]]
        np.testing.assert_allclose(row.reshape(4, -1), raw.T, atol=1e-3)


def test_phy_import_keeps_the_good_units(session, imported):
    summary = imported["phy"]
    dataset = load_dataset(summary.csv_path)
    good = [u for u in session["truth"].unit_ids if str(u) != NOISE_UNIT]
    assert list(dataset.class_names) == [str(u) for u in good]
    assert dict(zip(dataset.class_names, dataset.class_counts.tolist())) == expected_counts(session, good)
    record = json.loads(summary.json_path.read_text())
    assert record["kind"] == "phy" and record["groups"] == ["good"]
    # Same recording, same channels chosen as from the analyzer, same spikes.
    analyzer_record = json.loads(imported["analyzer"].json_path.read_text())
    for u in good:
        assert [str(c) for c in record["channels"]["per_unit"][str(u)]] == \
               [str(c) for c in analyzer_record["channels"]["per_unit"][str(u)]]
    from_analyzer = load_dataset(imported["analyzer"].csv_path)
    keep = np.isin(from_analyzer.y, [from_analyzer.label_map()[str(u)] for u in good])
    np.testing.assert_allclose(dataset.X, from_analyzer.X[keep], atol=1e-3)


def test_group_unit_and_subset_options(session, tmp_path):
    every = import_spikes(session["phy_dir"], tmp_path / "all.csv", groups=["good", "noise"],
                          channels="extremum", max_spikes_per_unit=None)
    assert every.units == tuple(str(u) for u in session["truth"].unit_ids) and every.n_channels == 1
    assert load_dataset(every.csv_path).X.shape[1] == NBEFORE + NAFTER  # plain s0..s59 columns
    assert (tmp_path / "all.csv").read_text().splitlines()[0].startswith("s0,s1,")

    two = import_spikes(session["analyzer_dir"], tmp_path / "two.csv", units=["2", "0"], max_spikes_per_unit=30)
    assert two.units == ("2", "0") and two.spike_counts == {"2": 30, "0": 30}
    again = import_spikes(session["analyzer_dir"], tmp_path / "again.csv", units=["2", "0"], max_spikes_per_unit=30)
    assert again.csv_path.read_text() == two.csv_path.read_text()  # seeded subset
    other = import_spikes(session["analyzer_dir"], tmp_path / "other.csv", units=["2", "0"],
                          max_spikes_per_unit=30, seed=1)
    assert other.csv_path.read_text() != two.csv_path.read_text()

    filtered = import_spikes(session["analyzer_dir"], tmp_path / "bp.csv", units=["2", "0"], max_spikes_per_unit=30,
                             bandpass=(300.0, 6000.0))
    assert json.loads(filtered.json_path.read_text())["bandpass_hz"] == [300.0, 6000.0]
    raw, bp = load_dataset(two.csv_path).X, load_dataset(filtered.csv_path).X
    assert raw.shape == bp.shape and not np.allclose(raw, bp, atol=1.0)


def test_cli_import_then_tune_a_smoke_run_on_each_import(session, imported, tmp_path, capsys, ray_2cpu):
    out = tmp_path / "data" / "CLI.csv"
    assert main(["import", str(session["phy_dir"]), str(out), "--channels", "3", "--max-spikes", "40"]) == 0
    printed = capsys.readouterr().out
    assert f"Wrote {out}" in printed and "3 units, 3 channel(s) x 60 samples" in printed
    assert load_dataset(out).class_counts.tolist() == [40, 40, 40]

    from tuning.search.driver import run_tuning

    both = f"{imported['analyzer'].csv_path},{imported['phy'].csv_path}"
    outcomes = run_tuning("cnn", both, storage=str(tmp_path / "rr"), samples=2, max_epochs=1, grace_period=1,
                          folds=2, repeats=1, verbose=0)
    assert [o.datasets for o in outcomes] == [["GTA"], ["GTP"]]
    for outcome in outcomes:
        assert outcome.complete and outcome.n_trials == 2 and outcome.n_errored == 0
        record = json.loads((outcome.path / "spikesort_run.json").read_text())
        assert record["datasets"][0]["n_channels"] == 4


# --------------------------------------------------------------------------------------
# Bad input: one error line, exit 2, nothing written
# --------------------------------------------------------------------------------------


def run_cli_error(capsys, args, output: Path) -> str:
    capsys.readouterr()  # drop what the set-up printed (SpikeInterface's progress bars)
    code = main(["import", *map(str, args[:1]), str(output), *map(str, args[1:])])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert not output.exists() and not output.with_suffix(".json").exists()
    if output.parent.exists():
        assert not list(output.parent.glob(".*.tmp"))  # no temporary left behind
    return err


def test_folder_that_is_neither_analyzer_nor_phy(session, tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    err = run_cli_error(capsys, [tmp_path / "notes"], tmp_path / "out" / "X.csv")
    assert "neither a SpikeInterface SortingAnalyzer folder" in err and "notes" in err
    # A SpikeInterface folder of another kind (a saved recording) is named as such.
    err = run_cli_error(capsys, [session["base"] / "recording"], tmp_path / "out" / "X.csv")
    assert "not a SortingAnalyzer" in err


def test_missing_recordings(session, tmp_path, capsys):
    # An analyzer whose recording folder was deleted after it was saved, without the waveforms
    # extension: the error gives both ways out.
    copy = sc.load(session["base"] / "recording").save(folder=tmp_path / "rec_copy", verbose=False)
    sc.create_sorting_analyzer(session["truth"], copy, format="binary_folder", folder=tmp_path / "orphan")
    shutil.rmtree(tmp_path / "rec_copy")
    err = run_cli_error(capsys, [tmp_path / "orphan"], tmp_path / "out" / "X.csv")
    assert "no waveforms extension" in err and "recording cannot be found" in err
    assert "analyzer.compute(['random_spikes', 'waveforms'])" in err and "--recording" in err
    # Given again with --recording, it imports.
    summary = import_spikes(tmp_path / "orphan", tmp_path / "ok.csv", recording=session["base"] / "recording")
    assert len(summary.units) == N_UNITS

    # A Phy folder whose dat_path points nowhere.
    phy = tmp_path / "phy_moved"
    shutil.copytree(session["phy_dir"], phy, ignore=shutil.ignore_patterns("recording.dat"))
    params = (phy / "params.py").read_text().splitlines()
    (phy / "params.py").write_text("\n".join(["dat_path = r'gone.dat'"] + params[1:]) + "\n")
    err = run_cli_error(capsys, [phy], tmp_path / "out" / "X.csv")
    assert "gone.dat" in err and "missing" in err and "--recording" in err
    err = run_cli_error(capsys, [phy, "--recording", tmp_path / "nowhere.dat"], tmp_path / "out" / "X.csv")
    assert "nowhere.dat: recording not found" in err


def test_no_unit_left_after_the_group_filter(session, tmp_path, capsys):
    err = run_cli_error(capsys, [session["phy_dir"], "--groups", "mua"], tmp_path / "X.csv")
    assert "no unit is in group mua" in err and "good (3 units), noise (1 unit)" in err
    err = run_cli_error(capsys, [session["phy_dir"], "--units", NOISE_UNIT], tmp_path / "X.csv")
    assert f"unit {NOISE_UNIT} is in group noise" in err


def test_a_unit_with_too_few_spikes_for_the_folds(session, tmp_path, capsys):
    # Curated in Phy: two spikes of unit 0 split off into a cluster 9 marked good.
    phy = tmp_path / "phy_split"
    shutil.copytree(session["phy_dir"], phy, ignore=shutil.ignore_patterns("*.tsv", "recording.dat"))
    clusters = np.load(phy / "spike_clusters.npy")
    clusters[np.flatnonzero(clusters.ravel() == 0)[:2]] = 9
    np.save(phy / "spike_clusters.npy", clusters)
    pd.DataFrame({"cluster_id": [0, 1, 2, 3, 9], "group": ["good"] * 5}).to_csv(
        phy / "cluster_group.tsv", sep="\t", index=False)
    err = run_cli_error(capsys, [phy], tmp_path / "X.csv")
    assert "unit 9 has 2 spike(s)" in err and "at least 5" in err and "--units" in err


def test_option_errors(session, tmp_path):
    with pytest.raises(InputError, match="must be a .csv"):
        import_spikes(session["analyzer_dir"], tmp_path / "X.txt")
    with pytest.raises(InputError, match="'extremum' or a number"):
        import_spikes(session["analyzer_dir"], tmp_path / "X.csv", channels="near")
    with pytest.raises(InputError, match="more channels than the recording has"):
        import_spikes(session["analyzer_dir"], tmp_path / "X.csv", channels=N_CHANNELS + 1)
    with pytest.raises(InputError, match="0 < LOW < HIGH"):
        import_spikes(session["analyzer_dir"], tmp_path / "X.csv", bandpass=(6000.0, 300.0))
    with pytest.raises(InputError, match="unit.*7 not found"):
        import_spikes(session["analyzer_dir"], tmp_path / "X.csv", units=["7"])
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------
# Issue 27: the analyzer's own waveforms extension, with or without the recording
# --------------------------------------------------------------------------------------


def rows_of(dataset, frame: pd.DataFrame, unit) -> tuple[np.ndarray, np.ndarray]:
    """(waveforms (n, channels, samples), sample_index) of one unit's rows of an imported dataset."""
    mine = dataset.y == dataset.label_map()[str(unit)]
    X = dataset.X[mine].reshape(int(mine.sum()), dataset.n_channels, dataset.length)
    return X, frame.loc[mine, "sample_index"].to_numpy()


def test_analyzer_shared_without_its_recording_imports_from_its_waveforms(session, tmp_path, capsys):
    """A lab's analyzer: sparse (3 closest channels), random spikes and waveforms computed, then the
    recording moved away. The import reads the extension: its random spikes, its arrays."""
    recording = sc.load(session["base"] / "recording").save(folder=tmp_path / "rec", verbose=False)
    analyzer = sc.create_sorting_analyzer(session["truth"], recording, format="binary_folder",
                                          folder=tmp_path / "shared", sparse=True,
                                          sparsity_kwargs=dict(method="closest_channels", num_channels=3))
    analyzer.compute("random_spikes", max_spikes_per_unit=40, margin_size=MARGIN, seed=7, verbose=False)
    analyzer.compute("waveforms", ms_before=MS_BEFORE, ms_after=MS_AFTER, verbose=False)
    shutil.move(tmp_path / "rec", tmp_path / "rec_elsewhere")
    shared = sc.load_sorting_analyzer(tmp_path / "shared")
    assert not shared.has_recording()

    out = tmp_path / "data" / "Shared.csv"
    capsys.readouterr()
    assert main(["import", str(tmp_path / "shared"), str(out), "--channels", "3"]) == 0
    assert "from the analyzer's waveforms extension" in capsys.readouterr().out
    dataset = load_dataset(out)
    frame = pd.read_csv(out)
    assert dataset.metadata_columns == ("sample_index",) and dataset.n_channels == 3
    assert dataset.length == NBEFORE + NAFTER  # the extension's own window
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["waveforms"]["from"] == "the analyzer's waveforms extension" and record["recording"] is None
    assert record["waveforms"]["random_spikes"]["seed"] == 7

    spikes = shared.get_extension("random_spikes").get_random_spikes()
    waveforms = shared.get_extension("waveforms")
    per_unit = shared.sparsity.unit_id_to_channel_indices
    main_channel = dict(zip(shared.unit_ids, shared.sorting.get_property("main_channel_id")))
    # Labels and spike counts: the analyzer's random spikes.
    assert list(dataset.class_names) == [str(u) for u in shared.unit_ids]
    assert dataset.class_counts.tolist() == [int(np.sum(spikes["unit_index"] == k)) for k in range(N_UNITS)]
    for k, u in enumerate(shared.unit_ids):
        X, sample_index = rows_of(dataset, frame, u)
        assert sample_index.tolist() == spikes["sample_index"][spikes["unit_index"] == k].tolist()
        # The waveforms: the extension's array, on the unit's sparse channels, main channel first.
        channels = [str(c) for c in record["channels"]["per_unit"][str(u)]]
        assert channels[0] == str(main_channel[u])
        assert sorted(channels) == sorted(str(c) for c in shared.channel_ids[per_unit[u]])
        stored = waveforms.get_waveforms_one_unit(u)  # (n, samples, sparse channels)
        order = [list(map(str, shared.channel_ids[per_unit[u]])).index(c) for c in channels]
        np.testing.assert_allclose(X, stored[:, :, order].transpose(0, 2, 1), atol=5e-4)

    # A narrower window is cut from the extension's; a wider one, or channels its sparsity
    # dropped, need the recording: one error line that says so.
    narrow = import_spikes(tmp_path / "shared", tmp_path / "narrow.csv", ms_before=0.5, ms_after=1.0)
    assert narrow.n_samples == 10 + 20 and narrow.waveforms_from == "extension"
    X = load_dataset(narrow.csv_path).X
    first_unit = shared.unit_ids[0]
    channel = list(map(str, shared.channel_ids[per_unit[first_unit]])).index(str(main_channel[first_unit]))
    np.testing.assert_allclose(X[:int(np.sum(spikes["unit_index"] == 0))],
                               waveforms.get_waveforms_one_unit(first_unit)[:, 10:40, channel], atol=5e-4)
    err = run_cli_error(capsys, [tmp_path / "shared", "--ms-after", "3"], tmp_path / "out" / "W.csv")
    assert "less than the window asked for" in err and "--recording" in err
    err = run_cli_error(capsys, [tmp_path / "shared", "--channels", "5"], tmp_path / "out" / "C.csv")
    assert "its sparsity" in err and "--recording" in err
    # Given the recording again, what the extension cannot give is computed from it.
    wide = import_spikes(tmp_path / "shared", tmp_path / "wide.csv", channels=5, max_spikes_per_unit=20,
                         recording=tmp_path / "rec_elsewhere")
    assert wide.waveforms_from == "computed" and wide.n_channels == 5


def test_recording_without_the_extension_equals_spikeinterfaces_own_extension(session, tmp_path):
    """The session's analyzer has its recording and no waveforms: the import computes them; the
    result is SpikeInterface's own extension computed on the same recording, same parameters."""
    summary = import_spikes(session["analyzer_dir"], tmp_path / "Computed.csv", channels=3, max_spikes_per_unit=25,
                            seed=5, ms_before=MS_BEFORE, ms_after=MS_AFTER)
    assert summary.waveforms_from == "computed"
    record = json.loads(summary.json_path.read_text())
    assert record["waveforms"]["random_spikes"] == {"method": "uniform", "max_spikes_per_unit": 25,
                                                    "margin_size": MARGIN, "seed": 5}
    reference = sc.create_sorting_analyzer(session["truth"], session["recording"], format="memory", sparse=False)
    reference.compute("random_spikes", method="uniform", max_spikes_per_unit=25, margin_size=MARGIN, seed=5)
    reference.compute("waveforms", ms_before=MS_BEFORE, ms_after=MS_AFTER)
    spikes = reference.get_extension("random_spikes").get_random_spikes()
    dataset, frame = load_dataset(summary.csv_path), pd.read_csv(summary.csv_path)
    ids = [str(c) for c in reference.channel_ids]
    for k, u in enumerate(reference.unit_ids):
        X, sample_index = rows_of(dataset, frame, u)
        assert sample_index.tolist() == spikes["sample_index"][spikes["unit_index"] == k].tolist()
        channels = [ids.index(str(c)) for c in record["channels"]["per_unit"][str(u)]]
        expected = reference.get_extension("waveforms").get_waveforms_one_unit(u)[:, :, channels]
        np.testing.assert_allclose(X, expected.transpose(0, 2, 1), atol=5e-4)
