"""Clean: parse a raw dataset file by its recipe, validate it, and produce a numeric table ready for training.

Every rule is the recipe's (delimiter, target mapping, dropping incomplete or non-numeric columns); every failure
names the file, the column or the rule, because a silently "cleaned" wrong dataset is worse than a stopped run.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.recipes import Recipe, normalize_name


@dataclass
class CleanStats:
    """What cleaning did, reported as KFP metrics and kept with the dataset."""

    rows_in: int
    columns_in: int
    rows_out: int = 0
    columns_out: int = 0
    features: list[str] = field(default_factory=list)
    dropped_columns: dict[str, str] = field(default_factory=dict)
    dropped_rows: int = 0
    target_summary: dict[str, float] = field(default_factory=dict)
    layout: str = ""
    """How the file was read when its layout is not the recipe's plain one (scikit-learn's bundled CSV)."""

    def as_metrics(self) -> dict[str, float]:
        """The numeric part, as KFP Metrics entries."""
        return {"rows_in": self.rows_in, "columns_in": self.columns_in, "rows_out": self.rows_out,
                "columns_out": self.columns_out, "dropped_columns": len(self.dropped_columns),
                "dropped_rows": self.dropped_rows,
                **{f"target_{key}": value for key, value in self.target_summary.items()}}

    def as_dict(self) -> dict[str, Any]:
        """Everything, JSON-serializable."""
        return asdict(self)


@in_step(Step.CLEAN)
def load_raw(path: Path, recipe: Recipe) -> pd.DataFrame:
    """Parse the raw file as the recipe's format.

    Raises:
        KfopsError: Empty, unparsable, wrong delimiter, or a broken ARFF header.
    """
    if path.stat().st_size == 0:
        raise KfopsError(f"{path.name} is empty", "check the dataset URL")
    if recipe.format == "arff":
        return _load_arff(path)
    return _load_csv(path, recipe)


def _load_csv(path: Path, recipe: Recipe) -> pd.DataFrame:
    if not recipe.header:
        bundled = _load_sklearn_layout(path, recipe)
        if bundled is not None:
            return bundled
    frame = _read_csv(path, recipe, header=0 if recipe.header else None,
                      names=list(recipe.column_names) if recipe.column_names else None)
    expected = len(recipe.column_names) if recipe.column_names else 2
    if frame.shape[1] < expected:
        found = _sniff_delimiter(path)
        hint = f"; the file looks {found!r}-separated" if found and found != recipe.delimiter else ""
        raise KfopsError(f"{path.name} parsed into {frame.shape[1]} column(s) with delimiter "
                               f"{recipe.delimiter!r}{hint}",
                         "use the recipe whose delimiter matches the file, or fix the file")
    return frame


def _read_csv(path: Path, recipe: Recipe, **options: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=recipe.delimiter, skipinitialspace=True, **options)
    except pd.errors.EmptyDataError as error:
        raise KfopsError(f"{path.name} has no data", "check the dataset URL") from error
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise KfopsError(f"{path.name} is not a valid {recipe.delimiter!r}-separated file ({error})",
                         "check the dataset URL and the recipe's delimiter") from error


def _load_sklearn_layout(path: Path, recipe: Recipe) -> pd.DataFrame | None:
    """A CSV in the layout of scikit-learn's bundled datasets, with class names for labels; None if it is not one.

    That layout's first row is ``<rows>,<features>,<class name>,...`` (iris: ``150,4,setosa,versicolor,virginica``);
    every other row is the features and the index of its class in those names.

    Raises:
        KfopsError: The first row says so, but the rest disagrees (row count, feature count, class indices).
    """
    with path.open(newline="", errors="replace") as handle:
        first = [cell.strip() for cell in next(csv.reader(handle, delimiter=recipe.delimiter), [])]
    if len(first) < 3 or not all(cell.isdigit() for cell in first[:2]) or any(_is_number(c) for c in first[2:]):
        return None
    rows, width, names = int(first[0]), int(first[1]), first[2:]
    features = [name for name in recipe.column_names if name != recipe.target]
    if width != len(features):
        raise KfopsError(f"{path.name} has {width} features per row (its first line says); recipe {recipe.name!r} "
                         f"reads {len(features)} ({', '.join(features)})",
                         "use the recipe of this dataset, or the dataset of this recipe")
    frame = _read_csv(path, recipe, skiprows=1, header=None, names=[*features, recipe.target])
    if len(frame) != rows:
        raise KfopsError(f"{path.name} declares {rows} rows in its first line but has {len(frame)}",
                         "the copy is truncated or was edited: reinstall the package that ships it or fetch it again")
    codes = pd.to_numeric(frame[recipe.target], errors="coerce")
    bad = ~codes.isin(range(len(names)))
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise KfopsError(f"{path.name}: class {str(frame[recipe.target].iloc[row])!r} on line {row + 2} is not an "
                         f"index of its class names ({', '.join(names)})",
                         "the copy is damaged: reinstall the package that ships it or fetch it again")
    frame[recipe.target] = codes.astype("int64").map(dict(enumerate(names)))
    frame.attrs["layout"] = (f"scikit-learn bundled CSV: {rows} rows, {width} features, classes "
                             f"{', '.join(names)}")
    return frame


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sniff_delimiter(path: Path) -> str | None:
    with path.open(newline="", errors="replace") as handle:
        sample = handle.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return None


def _load_arff(path: Path) -> pd.DataFrame:
    from scipy.io import arff

    try:
        data, _meta = arff.loadarff(path)
    except (arff.ParseArffError, ValueError, IndexError, UnicodeDecodeError) as error:
        raise KfopsError(f"{path.name} is not a valid ARFF file (broken header or data: {error})",
                         "check that the URL serves the .arff file itself") from error
    frame = pd.DataFrame(data)
    for column in frame.columns:
        if frame[column].dtype == object:
            # scipy returns nominal values as bytes and missing ones as b'?'
            frame[column] = frame[column].map(lambda v: None if v in (b"?", "?") else
                                              v.decode() if isinstance(v, bytes) else v)
    return frame


@in_step(Step.CLEAN)
def clean(frame: pd.DataFrame, recipe: Recipe) -> tuple[pd.DataFrame, CleanStats]:
    """Apply the recipe's rules and validate the result.

    Returns:
        The cleaned table (numeric features, then the target as the last column) and what was done.

    Raises:
        KfopsError: Missing target, unmapped target labels, empty or non-numeric feature columns, too few rows.
    """
    stats = CleanStats(rows_in=len(frame), columns_in=frame.shape[1], layout=str(frame.attrs.get("layout", "")))
    if recipe.normalize_columns:
        frame = frame.rename(columns=normalize_name)
    target = recipe.target_column
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:12])) + (" ..." if frame.shape[1] > 12 else "")
        raise KfopsError(f"target column {target!r} not found (columns: {shown})",
                         "check the dataset URL and the recipe's target column")

    frame = frame.dropna(subset=[target])
    frame = frame.assign(**{target: _map_target(frame[target], recipe, target)})
    features = frame.drop(columns=[target])

    empty = [name for name in features.columns if features[name].isna().all()]
    if recipe.drop_columns_with_missing:
        for name in features.columns[features.isna().any()]:
            stats.dropped_columns[str(name)] = "missing values"
        features = features.dropna(axis=1)
    elif empty:
        raise KfopsError(f"column(s) {', '.join(map(repr, empty))} contain no values at all",
                         "fix the source file or use a recipe that drops incomplete columns")

    non_numeric = [name for name in features.columns if not pd.api.types.is_numeric_dtype(features[name])]
    if recipe.numeric_only:
        for name in non_numeric:
            stats.dropped_columns[str(name)] = "non-numeric"
        features = features.drop(columns=non_numeric)
    elif non_numeric:
        examples = {name: features[name][pd.to_numeric(features[name], errors="coerce").isna()
                                         & features[name].notna()].iloc[:1].tolist() for name in non_numeric}
        detail = "; ".join(f"{name!r} (e.g. {values[0]!r})" for name, values in examples.items() if values)
        raise KfopsError(f"non-numeric values in feature column(s): {detail or ', '.join(non_numeric)}",
                         "fix the source file or use a recipe that drops non-numeric columns")
    if features.shape[1] == 0:
        raise KfopsError("no feature columns left after cleaning",
                         "check the dataset: every column was empty, incomplete or non-numeric")

    cleaned = pd.concat([features.astype("float64"), frame[target]], axis=1)
    complete = cleaned.dropna()
    stats.dropped_rows = stats.rows_in - len(complete)
    if len(complete) < recipe.min_rows:
        raise KfopsError(f"only {len(complete)} usable rows after cleaning (of {stats.rows_in}); "
                               f"recipe {recipe.name!r} needs at least {recipe.min_rows}",
                         "check that the URL serves the whole dataset")
    complete = complete.reset_index(drop=True)
    stats.rows_out, stats.columns_out = complete.shape
    stats.features = [str(name) for name in features.columns]
    stats.target_summary = _target_summary(complete[target], recipe)
    return complete, stats


def _map_target(values: pd.Series, recipe: Recipe, target: str) -> pd.Series:
    if recipe.target_mapping:
        as_text = values.map(lambda v: _label_text(v))
        unknown = sorted(set(as_text) - set(recipe.target_mapping))
        if unknown:
            raise KfopsError(f"target {target!r} has labels {unknown[:5]} the recipe does not map "
                                   f"(known: {sorted(recipe.target_mapping)})",
                             "check the dataset or extend the recipe's target_mapping")
        indices = as_text.map(recipe.target_mapping).astype("int64")
        if recipe.class_labels:
            return indices.map(dict(enumerate(recipe.class_labels))).astype(object)
        return indices
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any():
        bad = values[numeric.isna()].iloc[0]
        raise KfopsError(f"target {target!r} has a non-numeric value {bad!r}",
                         "check the dataset or add a target_mapping to the recipe")
    if recipe.task == "classification":
        return numeric.astype("int64")
    return numeric.astype("float64")


def _label_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _target_summary(target: pd.Series, recipe: Recipe) -> dict[str, float]:
    if recipe.task == "regression":
        return {"mean": float(target.mean()), "std": float(target.std()), "min": float(target.min()),
                "max": float(target.max())}
    counts = target.value_counts(normalize=True)
    return {f"share_{label}": float(share) for label, share in sorted(counts.items())}


def clean_file(raw: Path, recipe: Recipe, out: Path) -> CleanStats:
    """Parse ``raw``, clean it and write the result to ``out`` as parquet."""
    cleaned, stats = clean(load_raw(raw, recipe), recipe)
    out.parent.mkdir(parents=True, exist_ok=True)
    cleaned.to_parquet(out, index=False)
    return stats
