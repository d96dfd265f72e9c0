from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from components.clean import clean, clean_file, load_raw
from kfops.base.errors import KfopsError
from kfops.base.recipes import RECIPES
from tests.datasets import (
    KDD_COMPLETE_NUMERIC,
    KDD_EMPTY,
    SKLEARN_IRIS,
    WINE_CSV,
    write_churn_arff,
    write_iris_csv,
    write_kdd_churn_arff,
)

pytestmark = pytest.mark.unit

WINE = RECIPES["winequality"]


def test_wine_quality_is_cleaned_with_normalised_columns(tmp_path: Path) -> None:
    stats = clean_file(WINE_CSV, WINE, tmp_path / "wine.parquet")
    frame = pd.read_parquet(tmp_path / "wine.parquet")
    assert frame.shape == (1599, 12)
    assert list(frame.columns)[:3] == ["fixed_acidity", "volatile_acidity", "citric_acid"]
    assert frame.columns[-1] == "quality"
    assert stats.rows_out == 1599
    assert stats.dropped_rows == 0
    assert 5.5 < stats.target_summary["mean"] < 5.8


def test_churn_arff_target_mapped_incomplete_and_nominal_columns_dropped(tmp_path: Path) -> None:
    raw = write_churn_arff(tmp_path / "churn.arff")
    stats = clean_file(raw, RECIPES["churn"], tmp_path / "churn.parquet")
    frame = pd.read_parquet(tmp_path / "churn.parquet")
    assert set(frame["CHURN"].unique()) <= {0, 1}
    assert stats.dropped_columns == {"Var6": "missing values", "Var7": "missing values",
                                     "Var191": "missing values", "Var192": "non-numeric"}
    assert not frame.isna().any().any()
    assert all(pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns)


def test_the_kdd_churn_schema_keeps_its_complete_numeric_variables(tmp_path: Path) -> None:
    raw = write_kdd_churn_arff(tmp_path / "KDDCup09_churn.arff", rows=300)
    stats = clean_file(raw, RECIPES["churn"], tmp_path / "churn.parquet")
    frame = pd.read_parquet(tmp_path / "churn.parquet")
    assert list(frame.columns) == [*(f"Var{n}" for n in KDD_COMPLETE_NUMERIC), "CHURN"]
    assert (stats.rows_in, stats.columns_in, stats.rows_out) == (300, 231, 300)
    assert len(stats.dropped_columns) == 227
    assert all(stats.dropped_columns[f"Var{n}"] == "missing values" for n in KDD_EMPTY)
    assert stats.dropped_columns["Var193"] == "non-numeric", "a complete nominal variable"


def test_headerless_iris_csv(tmp_path: Path) -> None:
    raw = write_iris_csv(tmp_path / "iris.data")
    frame, stats = clean(load_raw(raw, RECIPES["iris"]), RECIPES["iris"])
    assert frame.shape == (150, 5)
    # A classifier is trained on (and answers) the class labels the recipe names, not indices.
    assert sorted(frame["species"].unique()) == ["setosa", "versicolor", "virginica"]
    assert stats.target_summary == pytest.approx({"share_setosa": 1 / 3, "share_versicolor": 1 / 3,
                                                  "share_virginica": 1 / 3})


def test_scikit_learns_bundled_iris_cleans_to_the_same_table_as_the_uci_layout(tmp_path: Path) -> None:
    # First row "150,4,setosa,versicolor,virginica": sample and feature counts, then the class names; then
    # four measurements and a class index per row.
    bundled = SKLEARN_IRIS.read_text().splitlines()
    assert bundled[0] == "150,4,setosa,versicolor,virginica"
    frame, stats = clean(load_raw(SKLEARN_IRIS, RECIPES["iris"]), RECIPES["iris"])
    uci, _ = clean(load_raw(write_iris_csv(tmp_path / "iris.data"), RECIPES["iris"]), RECIPES["iris"])
    pd.testing.assert_frame_equal(frame, uci)
    assert stats.layout == "scikit-learn bundled CSV: 150 rows, 4 features, classes setosa, versicolor, virginica"


def _sklearn_iris(edit: Callable[[list[str]], list[str]]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "iris.csv"
        path.write_text("\n".join(edit(SKLEARN_IRIS.read_text().splitlines())) + "\n")
        return path
    return make


def _wine_variant(edit: Callable[[str], str]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "wine.csv"
        path.write_text(edit(WINE_CSV.read_text()))
        return path
    return make


def _file(name: str, text: str | Callable[[Path], str]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_text(text(tmp) if callable(text) else text)
        return path
    return make


def _first_lines(count: int) -> Callable[[str], str]:
    return lambda text: "\n".join(text.splitlines()[:count]) + "\n"


def _drop_column(name: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        rows = [line.split(";") for line in text.splitlines()]
        index = rows[0].index(f'"{name}"')
        return "\n".join(";".join(cell for i, cell in enumerate(row) if i != index) for row in rows) + "\n"
    return edit


def _blank_column(index: int) -> Callable[[str], str]:
    def edit(text: str) -> str:
        rows = [line.split(";") for line in text.splitlines()]
        for row in rows[1:]:
            row[index] = ""
        return "\n".join(";".join(row) for row in rows) + "\n"
    return edit


BAD_FILES: list[tuple[str, str, Callable[[Path], Path], str]] = [
    ("empty file", "winequality", _file("e.csv", ""), r"is empty"),
    ("wrong delimiter", "winequality", _wine_variant(lambda t: t.replace(";", ",")),
     r"parsed into 1 column\(s\) with delimiter ';'; the file looks ','-separated"),
    ("missing target column", "winequality", _wine_variant(_drop_column("quality")),
     r"target column 'quality' not found \(columns: fixed_acidity"),
    ("all-NaN column", "winequality", _wine_variant(_blank_column(3)), r"'residual_sugar' contain no values"),
    ("too few rows", "winequality", _wine_variant(_first_lines(40)),
     r"only 39 usable rows .* needs at least 100"),
    ("non-numeric feature", "winequality", _wine_variant(lambda t: t.replace("\n7.4;0.7;", "\n7.4;abc;", 1)),
     r"non-numeric values in feature column\(s\): 'volatile_acidity' \(e.g. 'abc'\)"),
    ("html saved as csv", "winequality", _file("p.csv", "<html><body>Not found</body></html>\n"),
     r"parsed into 1 column"),
    ("broken ARFF header", "churn",
     _file("b.arff", "@relation x\n@attribute a numeric\n@attribute CHURN {-1,1\n@data\n1,1\n"),
     r"not a valid ARFF file"),
    ("unmapped label", "churn",
     _file("u.arff", lambda tmp: write_churn_arff(tmp / "u0.arff").read_text()
           .replace("@attribute CHURN {-1,1}", "@attribute CHURN {-1,1,0}").replace(",1\n", ",0\n", 1)),
     r"labels \['0'\] the recipe does not map"),
    ("scikit-learn layout, truncated", "iris", _sklearn_iris(lambda lines: lines[:101]),
     r"iris.csv declares 150 rows in its first line but has 100"),
    ("scikit-learn layout, unknown class index", "iris",
     _sklearn_iris(lambda lines: [*lines[:-1], lines[-1][:-1] + "3"]),
     r"iris.csv: class '3' on line 151 is not an index of its class names \(setosa, versicolor, virginica\)"),
    ("scikit-learn layout, other features", "iris",
     _sklearn_iris(lambda lines: ["150,3,setosa,versicolor,virginica", *lines[1:]]),
     r"iris.csv has 3 features per row \(its first line says\); recipe 'iris' reads 4"),
    ("scikit-learn layout, class name the recipe does not know", "iris",
     _sklearn_iris(lambda lines: ["150,4,setosa,versicolor,virginica-x", *lines[1:]]),
     r"labels \['virginica-x'\] the recipe does not map"),
]


@pytest.mark.parametrize(("case", "recipe", "make_file", "expected"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_fail_with_the_cause(tmp_path: Path, case: str, recipe: str, make_file: Callable[[Path], Path],
                                       expected: str) -> None:
    raw = make_file(tmp_path)
    out = tmp_path / "out.parquet"
    with pytest.raises(KfopsError, match=expected) as raised:
        clean_file(raw, RECIPES[recipe], out)
    assert raised.value.step == "clean"
    assert not out.exists(), f"{case}: nothing may be written when cleaning fails"
