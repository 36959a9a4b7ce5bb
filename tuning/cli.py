"""Command line: ``python -m tuning tune FAMILY DATASET [options]`` (and ``export``, ``compare``).

Bad input ends with one line, ``error: ...``, and exit code 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys

from tuning.errors import InputError
from tuning.metrics import SCORES

EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    from tuning.settings import SEARCHERS, TuneSettings  # the defaults live in one place

    defaults = TuneSettings()
    parser = argparse.ArgumentParser(prog="python -m tuning", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    tune = commands.add_parser("tune", help="run a hyperparameter search, then export its results",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    tune.add_argument("family", help="ffn, cnn, lstm, mtl-ffn, mtl-cnn or mtl-lstm")
    tune.add_argument("dataset", help="a name (A12 -> DATA_DIR/A12.csv), a CSV path, a comma list, or all")
    search = tune.add_argument_group("search")
    search.add_argument("--samples", type=int, default=defaults.samples, help="trials per experiment")
    search.add_argument("--max-epochs", type=int, default=defaults.max_epochs, help="epochs of a full trial")
    search.add_argument("--grace-period", type=int, default=defaults.grace_period,
                        help="epochs before ASHA may stop a trial")
    search.add_argument("--metric", default=defaults.metric,
                        help="validation objective: accuracy, balanced_accuracy, macro_f1 or loss")
    search.add_argument("--seed", type=int, default=defaults.seed, help="seeds the split, the sampler and training")
    search.add_argument("--searcher", default=defaults.searcher, choices=SEARCHERS,
                        help="tpe: TPE + ASHA; random: random sampling + ASHA; bohb: BOHB + its HyperBand "
                             "(needs the [bohb] extra)")
    search.add_argument("--deterministic", action="store_true",
                        help="reproducible search: one trial at a time, deterministic torch kernels "
                             "(same command, seed, data, software and machine -> same results)")
    search.add_argument("--smoke", action="store_true", help="a run of about a minute (4 trials, 4 epochs, 3x1 folds)")
    data = tune.add_argument_group("data")
    data.add_argument("--data-dir", default=defaults.data_dir, help="folder of the dataset CSVs")
    data.add_argument("--label-column", default=None, help="label column name (default: found by name, else last)")
    data.add_argument("--folds", type=int, default=defaults.folds, help="folds of the full-split reruns")
    data.add_argument("--repeats", type=int, default=defaults.repeats, help="repeats (seeds) of the full-split reruns")
    scale = tune.add_argument_group("resources and cluster")
    scale.add_argument("--cpus-per-trial", type=float, default=defaults.cpus_per_trial)
    scale.add_argument("--gpus-per-trial", type=float, default=defaults.gpus_per_trial,
                       help="fractions allowed: 0.25 puts four trials on one GPU")
    scale.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray runtime (default: all)")
    scale.add_argument("--address", default=None,
                       help="join an existing Ray cluster: HOST:PORT or auto; unset: RAY_ADDRESS if set, "
                            "else a local runtime. The driver needs the cluster's RAY_AUTH_MODE, and "
                            "token mode is chosen when a Ray token exists and RAY_AUTH_MODE is unset")
    scale.add_argument("--storage", default=defaults.storage,
                       help="experiment folder root; on a multi-node cluster a path or URI every node sees")
    scale.add_argument("--resume", action="store_true", help="continue the newest interrupted experiment")
    tune.add_argument("--results-dir", default="results", help="root of the exported results tree")
    tune.add_argument("--no-export", action="store_true", help="tune only; export later with `export`")

    export = commands.add_parser("export", help="rerun an experiment's best config and write the results tree",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    export.add_argument("experiment", help="experiment folder (ray_results/<name>)")
    export.add_argument("--results-dir", default="results", help="root of the results tree")
    export.add_argument("--folds", type=int, default=None, help="default: as recorded by the search")
    export.add_argument("--repeats", type=int, default=None, help="default: as recorded by the search")
    export.add_argument("--address", default=None,
                        help="join an existing Ray cluster: HOST:PORT or auto; unset: the search's, "
                             "else RAY_ADDRESS, else a local runtime")
    export.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray runtime")

    compare = commands.add_parser("compare", help="single-task vs multi-task, per dataset, with statistics",
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    compare.add_argument("--results-dir", default="results", help="root of the results tree")
    compare.add_argument("--metric", default="accuracy", choices=SCORES, help="score tested in addition to accuracy")
    compare.add_argument("--no-references", action="store_true",
                         help="skip the scikit-learn reference rows (PCA+SVM, LDA)")
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level of the verdicts")
    return parser


def settings_from_args(args):
    from tuning.settings import TuneSettings

    return TuneSettings(
        samples=args.samples, max_epochs=args.max_epochs, grace_period=args.grace_period,
        metric=args.metric, seed=args.seed, searcher=args.searcher, deterministic=args.deterministic,
        smoke=args.smoke, data_dir=args.data_dir,
        label_column=args.label_column, folds=args.folds, repeats=args.repeats,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        num_cpus=args.num_cpus, address=args.address, storage=args.storage, resume=args.resume,
    )


def cmd_tune(args) -> int:
    from tuning.settings import load_for_tuning

    settings = settings_from_args(args).effective()
    groups = load_for_tuning(args.family, args.dataset, settings)  # every input error, before heavy imports
    from tuning import cluster
    from tuning.driver import run_groups

    started = cluster.connect(settings.address, settings.num_cpus)  # one runtime for tuning and export
    try:
        outcomes = run_groups(args.family, groups, settings)
        incomplete = [o for o in outcomes if not o.complete]
        for outcome in incomplete:
            print(f"Experiment {outcome.path} is incomplete ({outcome.n_trials} trials, "
                  f"{outcome.n_errored} errored); not exporting it. Continue it with:\n"
                  f"  {resume_command(args.argv)}", file=sys.stderr)
        if not args.no_export:
            from tuning.export import export_experiment, print_summary

            for outcome in outcomes:
                if outcome.complete:
                    print_summary(export_experiment(outcome.path, args.results_dir))
    finally:
        if started:
            import ray
            ray.shutdown()
    return EXIT_INTERRUPTED if incomplete else 0


def cmd_export(args) -> int:
    from tuning.export import export_experiment, print_summary

    summary = export_experiment(args.experiment, args.results_dir, folds=args.folds, repeats=args.repeats,
                                address=args.address, num_cpus=args.num_cpus)
    print_summary(summary)
    return 0


def cmd_compare(args) -> int:
    from tuning import compare

    return compare.run(args)


def resume_command(argv: list[str] | None = None) -> str:
    """The command that continues this search: the same arguments plus ``--resume``."""
    import shlex

    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume"]
    return shlex.join(["python", "-m", "tuning", *argv, "--resume"])


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    handlers = {"tune": cmd_tune, "export": cmd_export, "compare": cmd_compare}
    try:
        return handlers[args.command](args)
    except InputError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:  # a second Ctrl-C, while Tune was already stopping
        print("interrupted", file=sys.stderr)
        if args.command == "tune":
            print(f"Continue the search with:\n  {resume_command(args.argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
