"""``python -m trainer``: the command every Katib trial runs, and the final training when asked to register.

Hyperparameters are passed as ``--name=value`` (the form a Katib trial template substitutes), validated against the
recipe's model family. Metrics are printed as ``name=value`` lines for Katib's StdOut metrics collector.
"""

from __future__ import annotations

import argparse
import math
import sys

from kfops.base.errors import KfopsError, in_step


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Train one model; print metrics as name=value lines (Katib StdOut collector format).",
        epilog="Hyperparameters: --NAME=VALUE for each hyperparameter of the recipe's model family.",
    )
    parser.add_argument("--recipe", required=True, help="Recipe name (winequality, churn, iris).")
    parser.add_argument("--data", required=True, help="Cleaned dataset: s3://, file:// URI or a local path.")
    parser.add_argument("--register", metavar="MODEL_NAME",
                        help="Train on train+validation rows, score on the test rows, log to MLflow and register "
                             "the model under this name with alias 'challenger'.")
    parser.add_argument("--experiment", default="kfops", help="MLflow experiment for --register.")
    return parser


def _hyperparameters(extra: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    raw: dict[str, str] = {}
    for item in extra:
        if not item.startswith("--") or "=" not in item:
            parser.error(f"unexpected argument {item!r}; hyperparameters are passed as --name=value")
        name, value = item[2:].split("=", 1)
        raw[name.replace("-", "_")] = value
    return raw


@in_step("trainer")
def main(argv: list[str] | None = None) -> int:
    """Run the trainer; return the process exit code (1 for a :class:`KfopsError`, 2 for bad usage)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    raw = _hyperparameters(extra, parser)
    try:
        from kfops.base.recipes import get_recipe

        recipe = get_recipe(args.recipe)
        if args.register:
            from trainer.train import train_and_register

            result = train_and_register(recipe, args.data, raw, model_name=args.register,
                                        experiment=args.experiment)
            scores = result.test_metrics
            print(f"registered {result.name} version {result.version} ({result.source})", file=sys.stderr)
        else:
            from trainer.train import run_trial

            scores = run_trial(recipe, args.data, raw)
    except KfopsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from trainer.evaluate import metric_lines

    # Katib's StdOut collector reads "rmse=nan" as an empty value: the trial would succeed with no value and every
    # suggestion service fail on it. A trial whose metrics are not numbers has failed, and says why.
    broken = {name: value for name, value in scores.items() if not math.isfinite(value)}
    if broken:
        listed = ", ".join(f"{name}={value}" for name, value in broken.items())
        print(f"error: [train] the trial's metrics are not finite numbers ({listed}) with {raw}. Fix: narrow the "
              "search space away from these hyperparameters, or check the dataset's scale", file=sys.stderr)
        return 1

    print(metric_lines(scores), flush=True)
    return 0


def preload(argv: list[str]) -> None:
    """Import everything a trial uses, load its dataset and fit once, so that forked trials start warm.

    Used by the local Katib executor's fork server, which caps BLAS and OpenMP at one thread: the warm-up fit then
    starts no thread pool that forked children would inherit in a broken state. It halves a forked trial's time
    (first-call initialisation is no longer repeated in every child).
    """
    import sklearn.metrics
    import sklearn.model_selection  # noqa: F401

    from kfops.base.recipes import get_recipe
    from trainer.data import load_frame, split
    from trainer.evaluate import evaluate
    from trainer.models import build_model
    from trainer.train import run_trial  # noqa: F401

    args, _ = _parser().parse_known_args(argv)
    recipe = get_recipe(args.recipe)
    parts = split(load_frame(args.data), recipe.target_column, recipe.task)
    model = build_model(recipe.model, {}).fit(parts.x_train, parts.y_train)
    evaluate(recipe.task, model, parts.x_valid, parts.y_valid)
