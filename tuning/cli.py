"""Command line: ``python -m tuning tune FAMILY DATASET [options]`` (and ``export``, ``compare``, ``import``,
``predict``, ``study``).

Bad input ends with one line, ``error: ...``, and exit code 2; a failure of the machine (a
full disk, a storage folder gone or read-only) with one line that also says what was kept and
the command that continues, and exit code 75; ``--debug`` (anywhere on the command line)
shows the traceback instead. Ctrl-C stops the whole command (every dataset), exit code 130,
and prints the command that continues it.
"""

from __future__ import annotations

import argparse
import os
import sys

from tuning.errors import InputError, as_machine_error
from tuning.metrics import SCORES

EXIT_INPUT_ERROR = 2
EXIT_MACHINE_FAILURE = 75  # sysexits' EX_TEMPFAIL: not the input's fault; try again once fixed
EXIT_INTERRUPTED = 130
LAUNCHER_ENV = "SPIKESORT_TUNE_LAUNCHER"
"""Set by ``scripts/tune.sh`` to its own path as typed, so that the printed continue
command goes through the script too."""
ENSEMBLE_HELP = ("also score the average of the top K configurations' class probabilities as its own "
                 "approach (<Approach> Ensemble), trained beside the best on the same folds: the export's "
                 "reruns take about K times as long; 0: none")
RACE_HELP = ("before the export, race the search's top K configurations on 3 extra folds of the tuning "
             "split's training + validation rows and export the best mean (test rows unseen): K x 3 more "
             "trainings; 0: take the search's best (benchmarks/RESULTS.md, section racing, says why that "
             "is the default)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default once: not where the help already says it, not for None or a flag."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False or \
                action.default == argparse.SUPPRESS or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def search_options(defaults, *, planned: bool = False) -> argparse.ArgumentParser:
    """The search's options (tune and study). ``planned``: the study's per-search budget
    (None here) is set by its plan, so no default is shown."""
    from tuning.settings import SEARCHERS

    parent = argparse.ArgumentParser(add_help=False)
    search = parent.add_argument_group("search")
    search.add_argument("--samples", type=int, default=None if planned else defaults.samples,
                        help="trials per search" + (f" (default: {defaults.samples}, fewer if the time budget "
                                                    "needs it)" if planned else ""))
    search.add_argument("--max-epochs", type=int, default=defaults.max_epochs, help="epochs of a full trial")
    search.add_argument("--grace-period", type=int, default=defaults.grace_period,
                        help="epochs before ASHA may stop a trial")
    search.add_argument("--metric", default=defaults.metric,
                        help="validation objective: accuracy, balanced_accuracy, macro_f1 or loss")
    search.add_argument("--seed", type=int, default=defaults.seed, help="seeds the split, the sampler and training")
    search.add_argument("--searcher", default=defaults.searcher, choices=SEARCHERS,
                        help="tpe: TPE + ASHA; random: random sampling + ASHA; bohb: BOHB + its HyperBand "
                             "(needs the [bohb] extra)")
    return parent


def data_options(defaults) -> argparse.ArgumentParser:
    from tuning.settings import COLUMNS_HELP

    parent = argparse.ArgumentParser(add_help=False)
    data = parent.add_argument_group("data")
    data.add_argument("--data-dir", default=defaults.data_dir, help="folder of the dataset CSVs")
    data.add_argument("--label-column", default=None, help="label column name (default: found by name, else last)")
    data.add_argument("--columns", default=None, metavar="PATTERN", help=COLUMNS_HELP)
    data.add_argument("--folds", type=int, default=defaults.folds, help="folds of the full-split reruns")
    data.add_argument("--repeats", type=int, default=defaults.repeats, help="repeats (seeds) of the full-split reruns")
    return parent


def cluster_options(defaults) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    scale = parent.add_argument_group("resources and cluster")
    scale.add_argument("--cpus-per-trial", type=float, default=defaults.cpus_per_trial,
                       help="CPUs of each trial and rerun (its torch threads)")
    scale.add_argument("--gpus-per-trial", type=float, default=defaults.gpus_per_trial,
                       help="fractions allowed: 0.25 puts four trials on one GPU")
    scale.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray runtime (default: all)")
    scale.add_argument("--address", default=None,
                       help="join an existing Ray cluster: HOST:PORT or auto; unset: RAY_ADDRESS if set, "
                            "else a local runtime. The driver needs the cluster's RAY_AUTH_MODE, and "
                            "token mode is chosen when a Ray token exists and RAY_AUTH_MODE is unset")
    scale.add_argument("--storage", default=defaults.storage,
                       help="experiment folder root; on a multi-node cluster a path or URI every node sees")
    return parent


def results_options(*, race: bool = True) -> argparse.ArgumentParser:
    """The export's options. ``race``: offer ``--race`` (not to a study, whose replicates score
    the search's own picks, so an export picked otherwise would not be the pick it tested)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--results-dir", default="results", help="root of the results tree")
    parent.add_argument("--ensemble", type=int, default=0, metavar="K", help=ENSEMBLE_HELP)
    if race:
        parent.add_argument("--race", type=int, default=0, metavar="K", help=RACE_HELP)
    return parent


def build_parser() -> argparse.ArgumentParser:
    import models  # family names only: no torch
    from tuning.settings import TuneSettings  # the defaults live in one place

    defaults = TuneSettings()
    parser = argparse.ArgumentParser(prog="python -m tuning", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    tune = commands.add_parser("tune", help="run a hyperparameter search, then export its results",
                               formatter_class=HelpFormatter,
                               parents=[search_options(defaults), data_options(defaults), cluster_options(defaults),
                                        results_options()])
    tune.add_argument("family", help=", ".join(models.FAMILIES) + " (ft-*: multi-task, then fine-tuned per "
                      "dataset, see docs/fine-tuning.md; auto: ffn, cnn and lstm searched as one space)")
    tune.add_argument("dataset", help="a name (A12 -> DATA_DIR/A12.csv), a CSV path, a comma list, or all")
    tune.add_argument("--deterministic", action="store_true",
                      help="reproducible search: one trial at a time, deterministic torch kernels "
                           "(same command, seed, data, software and machine -> same results)")
    tune.add_argument("--max-mflop", default=f"{defaults.max_mflop:g}", metavar="MFLOP",
                      help="compute cap: every network searched does at most this many MFLOP a spike, so the "
                           "bundle sorts fast (0.3: about 100,000 spikes/s or more on two cores, see "
                           "docs/running.md); 'none': no cap (default: %(default)s)")
    tune.add_argument("--smoke", action="store_true", help="a run of about a minute (4 trials, 4 epochs, 3x1 folds)")
    tune.add_argument("--resume", action="store_true", help="continue the newest interrupted experiment")
    tune.add_argument("--no-export", action="store_true", help="tune only; export later with `export`")
    tune.add_argument("--verbose", action="store_true",
                      help="Ray's own output: status tables, every trial's configuration and results, "
                           "workers' log lines (default: a line per trial and a progress line)")

    export = commands.add_parser("export", help="rerun an experiment's best config and write the results tree",
                                 formatter_class=HelpFormatter, parents=[results_options()])
    export.add_argument("experiment", help="experiment folder (ray_results/<name>)")
    export.add_argument("--folds", type=int, default=None, help="folds of the full split (default: as recorded)")
    export.add_argument("--repeats", type=int, default=None, help="repeats of the full split (default: as recorded)")
    export.add_argument("--address", default=None,
                        help="join an existing Ray cluster: HOST:PORT or auto (default: RAY_ADDRESS, else "
                             "a local runtime)")
    export.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray runtime (default: all)")

    compare = commands.add_parser("compare", help="single-task vs multi-task, per dataset, with statistics",
                                  formatter_class=HelpFormatter)
    compare.add_argument("--results-dir", default="results", help="root of the results tree")
    compare.add_argument("--metric", default="accuracy", choices=SCORES, help="score tested in addition to accuracy")
    compare.add_argument("--no-references", action="store_true",
                         help="skip the scikit-learn reference rows (PCA+SVM, LDA)")
    compare.add_argument("--alpha", type=float, default=0.05,
                         help="significance level of the verdicts (on Holm-adjusted p-values)")
    compare.add_argument("--rope", type=float, default=1.0,
                         help="region of practical equivalence: +- this many accuracy points")
    compare.add_argument("--threshold", type=float, default=0.95,
                         help="posterior probability of the ROPE above which a pair is 'practically equivalent'")

    from tuning.study.runner import STUDY_GRACE_PERIOD, STUDY_MAX_EPOCHS, STUDY_MAX_MFLOP, STUDY_SAMPLES, add_arguments

    study_defaults = TuneSettings(samples=STUDY_SAMPLES, max_epochs=STUDY_MAX_EPOCHS, grace_period=STUDY_GRACE_PERIOD,
                                  max_mflop=STUDY_MAX_MFLOP)
    study = commands.add_parser("study", help="the whole question from replicated pipelines: every family, "
                                              "paired differences over replicates, results/report.md",
                                formatter_class=HelpFormatter,
                                parents=[search_options(study_defaults, planned=True), data_options(defaults),
                                         cluster_options(defaults), results_options(race=False)])
    add_arguments(study)

    imp = commands.add_parser("import", help="labelled spikes from a SortingAnalyzer or Kilosort/Phy folder "
                              "-> a dataset CSV (needs the spikeinterface extra)",
                              description="Waveforms come from the analyzer's own waveforms extension when it "
                                          "has one (no recording needed), else SpikeInterface computes them "
                                          "from the recording.",
                              formatter_class=HelpFormatter)
    imp.add_argument("source", help="a SpikeInterface SortingAnalyzer folder or a Kilosort/Phy output folder")
    imp.add_argument("output", help="the dataset CSV to write (e.g. data/M1.csv); its JSON goes beside it")
    imp.add_argument("--recording", default=None,
                     help="the recording, if the source's reference to it is gone and the analyzer has no "
                          "waveforms extension: a SpikeInterface-saved recording folder, or (Phy) the raw "
                          "binary that params.py describes")
    imp.add_argument("--units", default=None, help="comma list of unit ids to keep (unset: every unit of --groups)")
    imp.add_argument("--groups", default="good", help="Phy/Kilosort curation groups to keep, comma list")
    imp.add_argument("--max-spikes", type=int, default=1000,
                     help="at most this many spikes per unit (seeded random subset; from an analyzer's "
                          "extension, at most its random spikes); 0 keeps all")
    imp.add_argument("--ms-before", type=float, default=None,
                     help="window before the spike peak, ms (default: the analyzer's waveforms extension's, "
                          "else 1.0)")
    imp.add_argument("--ms-after", type=float, default=None,
                     help="window after the spike peak, ms (default: the extension's, else 2.0)")
    imp.add_argument("--channels", default="extremum",
                     help="'extremum' (each unit's largest channel) or K: that channel and its K-1 "
                          "nearest on the probe")
    imp.add_argument("--bandpass", default=None, metavar="LOW,HIGH",
                     help="band-pass filter the recording first, Hz (raw Kilosort .dat files are unfiltered)")
    imp.add_argument("--folds", type=int, default=defaults.folds,
                     help="folds the dataset must support: every unit needs enough spikes")
    imp.add_argument("--seed", type=int, default=0, help="seeds the spike subset")
    add_predict_parser(commands)
    for subparser in commands.choices.values():  # --debug after the subcommand too
        # SUPPRESS: a subcommand without --debug leaves the main parser's value alone.
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                               help="show tracebacks")
    return parser


def add_predict_parser(commands) -> None:
    predict = commands.add_parser("predict", help="sort the spikes of a CSV with a model bundle from the export",
                                  formatter_class=HelpFormatter)
    predict.add_argument("model_dir", help="a bundle folder: results/<Approach>/Model/<DATASET>")
    predict.add_argument("input", help="waveform CSV, with or without a label column")
    predict.add_argument("--out", required=True, help="predictions CSV to write (replaced only on success)")
    predict.add_argument("--task", default=None, help="the head of a multi-task bundle (a dataset name)")
    predict.add_argument("--min-confidence", type=float, default=None,
                         help="label spikes whose calibrated confidence is below this 'unsorted' (0..1)")
    predict.add_argument("--label-column", default=None,
                         help="INPUT's label column (default: found by name, else none)")
    predict.add_argument("--columns", default=None, metavar="PATTERN",
                         help="INPUT's waveform columns, as for tune (default: the bundle's, else found by rule)")
    predict.add_argument("--backend", default="torch", choices=("torch", "onnx", "torch-bf16"),
                         help="run the bundle's weights.pt with torch, its model.onnx with ONNX Runtime, or "
                              "weights.pt in bfloat16 (where the export's check passed; the export prints each "
                              "backend's speed)")
    predict.add_argument("--chunk-rows", type=int, default=50_000, help="spikes read and predicted at a time")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar on large inputs")


def settings_from_args(args):
    from tuning.settings import TuneSettings, parse_max_mflop

    return TuneSettings(
        samples=args.samples, max_epochs=args.max_epochs, grace_period=args.grace_period,
        metric=args.metric, seed=args.seed, searcher=args.searcher, deterministic=args.deterministic,
        smoke=args.smoke, data_dir=args.data_dir,
        label_column=args.label_column, columns=args.columns, folds=args.folds, repeats=args.repeats,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        num_cpus=args.num_cpus, address=args.address, storage=args.storage, resume=args.resume,
        verbose=2 if args.verbose else 1, max_mflop=parse_max_mflop(args.max_mflop),
    )


def cmd_tune(args) -> int:
    from tuning.settings import check_ensemble, check_output_folder, check_race, load_for_tuning

    settings = settings_from_args(args).effective()
    groups = load_for_tuning(args.family, args.dataset, settings)  # every input error, before heavy imports
    check_ensemble(args.ensemble)
    check_race(args.race)
    if not args.no_export:
        check_output_folder(args.results_dir, "--results-dir")
    from tuning.search.compute_cap import check_feasible

    check_feasible(args.family, groups, settings.max_mflop, settings.seed)  # before Ray: a cap no network fits
    from tuning.search import ray_runtime
    from tuning.search.driver import run_experiment
    from tuning.export.exporter import best_trial_from_outcome, export_experiment, print_summary

    # One runtime for tuning and export; workers' output reaches the console only with --verbose.
    started = ray_runtime.connect(settings.address, settings.num_cpus, log_to_driver=settings.verbose >= 2)
    finished = 0  # groups (in order) tuned and exported; with --no-export, tuned
    try:
        # Each dataset (group) is exported as soon as its search ends, with what the
        # search holds: its best trial and its validated data.
        for group in groups:
            outcome = run_experiment(args.family, group, settings)
            if not outcome.complete:  # Ctrl-C: Tune stopped the search; stop the command too
                print(f"Experiment {outcome.path} is incomplete ({outcome.n_trials} trials, "
                      f"{outcome.n_errored} errored); not exporting it.", file=sys.stderr)
                return interrupted(args, groups, finished)
            if not args.no_export:
                machine = outcome.trial_failures.machine_error(outcome.path, outcome.cpus_per_trial)
                if not outcome.best_config and machine is not None:  # not "nothing to export": the machine's doing
                    raise machine
                print_summary(export_experiment(outcome.path, args.results_dir, best=best_trial_from_outcome(outcome),
                                                datasets=list(group), ensemble=args.ensemble,
                                                race=args.race))
            finished += 1
    except KeyboardInterrupt:  # between searches, in an export, or a second Ctrl-C
        return interrupted(args, groups, finished)
    except OSError as error:  # a full disk, a storage folder gone: the datasets not finished continue
        machine = as_machine_error(error)
        if machine is None:
            raise
        machine.continue_command = continue_tune_command(args, groups, finished)
        if machine is error:
            raise
        raise machine from error
    finally:
        if started:
            import ray
            ray.shutdown()
    return 0


def interrupted(args, groups: list[list], finished: int) -> int:
    """Print the command that continues an interrupted ``tune`` (:func:`continue_tune_command`)."""
    print(f"\nInterrupted: {finished} of {len(groups)} experiments finished. Continue with:\n"
          f"  {continue_tune_command(args, groups, finished)}", file=sys.stderr)
    return EXIT_INTERRUPTED


def continue_tune_command(args, groups: list[list], finished: int) -> str:
    """The command that continues a ``tune`` stopped after ``finished`` groups: the datasets
    not finished (the stopped one resumes, the others start), with ``--resume``."""
    dataset = args.dataset if not finished else dataset_argument(
        [d for group in groups[finished:] for d in group], args.data_dir)
    return resume_command(args.argv, dataset=dataset, original=args.dataset, family=args.family)


def dataset_argument(datasets, data_dir: str) -> str:
    """A dataset argument for ``datasets``: names where DATA_DIR finds them, else paths."""
    from tuning.data.readers import resolve_dataset_paths
    from tuning.errors import InputError

    parts = []
    for dataset in datasets:
        try:
            by_name = resolve_dataset_paths(dataset.name, data_dir) == [dataset.path]
        except InputError:
            by_name = False
        parts.append(dataset.name if by_name else str(dataset.path))
    return ",".join(parts)


def cmd_export(args) -> int:
    from tuning.export.exporter import export_experiment, print_summary

    summary = export_experiment(args.experiment, args.results_dir, folds=args.folds, repeats=args.repeats,
                                address=args.address, num_cpus=args.num_cpus, ensemble=args.ensemble,
                                race=args.race)
    print_summary(summary)
    return 0


def cmd_compare(args) -> int:
    from tuning.study import comparison

    return comparison.run(args)


def cmd_study(args) -> int:
    from tuning.study.runner import run_study

    overrides = {name: getattr(args, name) for name in (
        "samples", "max_epochs", "grace_period", "metric", "seed", "searcher", "data_dir", "label_column", "columns",
        "folds",
        "repeats", "cpus_per_trial", "gpus_per_trial", "num_cpus", "address", "storage")}
    result = run_study(args.families, args.datasets, replicates=args.replicates, time_budget=args.time_budget or None,
                       results_dir=args.results_dir, smoke=args.smoke, export=not args.no_export,
                       ensemble=args.ensemble, alpha=args.alpha, rope=args.rope, threshold=args.threshold,
                       only_replicate=args.only_replicate, command=args.argv, **overrides)
    if result.report is not None:
        print(result.report.read_text())
    return 0


def cmd_predict(args) -> int:
    from tuning.bundle import predict

    return predict.run(args)


def cmd_import(args) -> int:
    from tuning.data.importers import import_spikes

    bandpass = None
    if args.bandpass is not None:
        try:
            low, high = (float(v) for v in args.bandpass.split(","))
        except ValueError:
            raise InputError(f"--bandpass must be LOW,HIGH in Hz (e.g. 300,6000), got {args.bandpass!r}") from None
        bandpass = (low, high)
    summary = import_spikes(
        args.source, args.output, recording=args.recording,
        units=[u for u in args.units.split(",") if u.strip()] if args.units else None,
        groups=[g for g in args.groups.split(",") if g.strip()],
        max_spikes_per_unit=args.max_spikes or None, ms_before=args.ms_before, ms_after=args.ms_after,
        channels=args.channels, seed=args.seed, folds=args.folds, bandpass=bandpass)
    counts = ", ".join(f"{u}: {n}" for u, n in summary.spike_counts.items())
    origin = ("from the analyzer's waveforms extension" if summary.waveforms_from == "extension"
              else "computed from the recording")
    print(f"Wrote {summary.csv_path} ({len(summary.units)} units, {summary.n_channels} channel(s) x "
          f"{summary.n_samples} samples at {summary.sampling_frequency:g} Hz, {origin}; spikes per unit {counts})")
    print(f"      {summary.json_path}")
    print(f"Tune on it with: scripts/tune.sh cnn {summary.csv_path}")
    return 0


def resume_command(argv: list[str] | None = None, *, dataset: str | None = None,
                   original: str | None = None, family: str | None = None) -> str:
    """The command that continues this search, as it can be typed: the same arguments plus
    ``--resume`` (and ``dataset`` in place of the ``original`` dataset argument, which
    follows ``family``), through ``scripts/tune.sh`` when it started this run, else this
    Python (``.venv/bin/python -m tuning ...``)."""
    import shlex

    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume"]
    if dataset is not None and family in argv and original in argv[argv.index(family) + 1:]:
        argv[argv.index(original, argv.index(family) + 1)] = dataset
    launcher = os.environ.get(LAUNCHER_ENV)
    if launcher and argv[:1] == ["tune"]:  # scripts/tune.sh runs `python -m tuning tune "$@"`
        return shlex.join([launcher, *argv[1:], "--resume"])
    return shlex.join([python_as_typed(), "-m", "tuning", *argv, "--resume"])


def same_command(argv: list[str]) -> str:
    """This command again, as it can be typed (export, predict, import: rerunning it
    redoes the step that failed; ``tune`` continues with :func:`resume_command`)."""
    import shlex

    return shlex.join([python_as_typed(), "-m", "tuning", *argv])


def python_as_typed() -> str:
    """This interpreter, relative to the working folder when inside it (``.venv/bin/python``)."""
    from pathlib import Path

    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(Path.cwd()))
    except ValueError:
        return str(executable)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    handlers = {"tune": cmd_tune, "export": cmd_export, "compare": cmd_compare, "import": cmd_import,
                "predict": cmd_predict, "study": cmd_study}
    try:
        return handlers[args.command](args)
    except InputError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except OSError as error:  # the machine's (tuning.errors.MachineError), or another error: raised
        machine = as_machine_error(error)
        if machine is None or args.debug:
            raise
        command = machine.continue_command or (resume_command(args.argv) if args.command == "tune"
                                               else same_command(args.argv))
        print(f"error: {machine}. {machine.remedy[:1].upper()}{machine.remedy[1:]}, then continue with: {command}",
              file=sys.stderr)
        return EXIT_MACHINE_FAILURE
    except KeyboardInterrupt:  # before the searches began (cmd_tune handles the rest)
        print("\ninterrupted", file=sys.stderr)
        if args.command == "tune":
            print(f"Continue with:\n  {resume_command(args.argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
