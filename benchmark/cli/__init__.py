"""``disbench``: run a study, rebuild the report, list what is registered."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from disbench.api import RegistryError
from disbench.cli import fetch, new_method, score, show
from disbench.run import verify

# Each command imports the machinery it needs when it runs: `disbench report` reads records
# alone and loads neither the registry nor torch, `disbench list` reads the registry's table.


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first; it registers its own datasets/methods/metrics",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory holding the published dataset files (sets DISBENCH_DATA_DIR)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="disbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train and score every run of a profile (resumes)")
    run.add_argument(
        "--profile",
        default=None,
        help="built-in profile name (smoke, cpu, gpu, paper) or a .toml file; "
        "default: gpu when CUDA is available, else cpu",
    )
    run.add_argument("--out", default="results", type=Path, help="results directory")
    run.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None)
    run.add_argument("--workers", type=int, default=None, help="parallel worker processes")
    run.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the groups as Ray tasks: on the cluster at ADDRESS ('auto': the one this "
        "node is in), or without ADDRESS on $RAY_ADDRESS or a new Ray on this machine",
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one profile key, e.g. --set train.steps=100 --set seeds=[0]",
    )
    run.add_argument(
        "--methods",
        default=None,
        metavar="A,B",
        help="run only these methods of the profile, e.g. --methods my_method,beta_vae,pca",
    )
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="run the runs recorded as failed again (their new records replace the old)",
    )
    _common(run)

    report = sub.add_parser("report", help="rebuild scores.csv, plots and leaderboard.md")
    report.add_argument("--out", default="results", type=Path, help="results directory")
    report.add_argument("--leaderboard", default=Path("leaderboard.md"), type=Path)
    report.add_argument(
        "--claims",
        default=Path("docs/claims.md"),
        type=Path,
        help="the papers' claims page, written when the records hold `claims` profile runs",
    )
    report.add_argument(
        "--profile", default=None, help="only this profile's studies (default: every study)"
    )
    _common(report)

    lst = sub.add_parser("list", help="list datasets, methods and metrics")
    _common(lst)

    score_p = sub.add_parser("score", help="score your own codes and factors from an .npz file")
    score.add_arguments(score_p)
    _common(score_p)

    check = sub.add_parser(
        "check-method", help="check a method against the plugin contract (fits it twice)"
    )
    check.add_argument("name", help="registered method name")
    check.add_argument("--dataset", default="blobs", help="dataset to fit on (default blobs)")
    check.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="dataset parameter"
    )
    check.add_argument("--steps", type=int, default=20, help="training steps per fit")
    _common(check)

    ver = sub.add_parser(
        "verify", help="rerun a seeded sample of finished runs and compare their scores"
    )
    verify.add_arguments(ver)
    _common(ver)

    new = sub.add_parser("new-method", help="write a ready-to-install method plugin package")
    new_method.add_arguments(new)

    datasets = sub.add_parser("datasets", help="look at a dataset")
    dsub = datasets.add_subparsers(dest="datasets_command", required=True)
    get = dsub.add_parser("fetch", help="download a published dataset's files and check them")
    fetch.add_arguments(get)
    _common(get)
    look = dsub.add_parser("show", help="PNG of samples and one traversal row per factor")
    show.add_arguments(look)
    _common(look)
    return parser


def _default_profile() -> str:
    from disbench.methods import frameworks

    return "gpu" if frameworks.get(frameworks.HARNESS).has_gpu() else "cpu"


def cmd_run(args: argparse.Namespace) -> int:
    """0 when every run of the study is ok, 1 when any is failed (each listed on stderr)."""
    from disbench.run.runner import failed_runs, run_study
    from disbench.run.study import load_profile, only_methods

    study = load_profile(args.profile or _default_profile(), args.overrides)
    if args.methods:
        study = only_methods(study, [m.strip() for m in args.methods.split(",") if m.strip()])
    counts = run_study(
        study,
        args.out,
        device=args.device,
        workers=args.workers,
        plugins=tuple(args.plugin),
        show_progress=not args.quiet,
        ray_address=args.ray,
        retry_failed=args.retry_failed,
    )
    print(
        f"study {study.name}: {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['skipped']} already done; records in {args.out / 'runs'}"
    )
    failed = failed_runs(study, args.out)
    for rec in failed:
        spec = rec["spec"]
        print(
            f"failed: {rec['id']} {spec['method']} on {rec['dataset_label']} seed={spec['seed']}: "
            f"{rec['error']}",
            file=sys.stderr,
        )
    if failed:
        print(
            f"disbench run: {len(failed)} run(s) failed; fix the cause and run again with "
            "--retry-failed",
            file=sys.stderr,
        )
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from disbench.report import build_report

    paths = build_report(args.out, args.leaderboard, args.profile, args.claims)
    claims = f", {paths['claims']}" if "claims" in paths else ""
    print(
        f"wrote {paths['scores']}, {paths['leaderboard']}, {paths['html']}{claims} "
        f"and {len(paths) - 3 - bool(claims)} plot(s)"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Every name with its description, read without importing a plugin (no torch, no
    jax); one that cannot be used says why."""
    from disbench.registry import DATASETS, METHODS, METRICS

    for title, registry in (("datasets", DATASETS), ("methods", METHODS), ("metrics", METRICS)):
        print(f"{title}:")
        for entry in registry.listing():
            text = f"unavailable: {entry.unavailable}" if entry.unavailable else entry.description
            print(f"  {entry.name:24s} {text}")
    return 0


def cmd_check_method(args: argparse.Namespace) -> int:
    from disbench.run.contracts import check_method

    params = show.parse_params(args.param)
    for line in check_method(args.name, args.dataset, params, args.steps):
        print(f"ok: {line}")
    print(f"method {args.name!r} keeps the contract")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    if args.datasets_command == "fetch":
        return fetch.run(args)
    return show.run(args)


def cmd_score(args: argparse.Namespace) -> int:
    return score.run(args)


COMMANDS = {
    "run": cmd_run,
    "report": cmd_report,
    "list": cmd_list,
    "datasets": cmd_datasets,
    "score": cmd_score,
    "check-method": cmd_check_method,
    "new-method": lambda args: new_method.run(args),
    "verify": lambda args: verify.run(args),
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "data_dir", None):
            os.environ["DISBENCH_DATA_DIR"] = str(args.data_dir)
        if getattr(args, "plugin", []):
            from disbench.registry import load_plugin

            for plugin in args.plugin:
                load_plugin(plugin)
        return COMMANDS[args.command](args)
    except (RegistryError, FileNotFoundError, ValueError) as exc:  # ProfileError is a ValueError
        print(f"disbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ndisbench: interrupted; finished runs are saved, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
