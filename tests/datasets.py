"""Small datasets in the real formats of the recipes' sources, written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.clean import clean_file
from kfops.base.paths import BUNDLED_DATA
from kfops.base.recipes import RECIPES

WINE_CSV = BUNDLED_DATA / "winequality-red.csv"


def _sklearn_iris() -> Path:
    import importlib.resources

    return Path(str(importlib.resources.files("sklearn.datasets").joinpath("data/iris.csv")))


#: The copy of iris scikit-learn ships (first row ``150,4,setosa,versicolor,virginica``).
SKLEARN_IRIS = _sklearn_iris()


def write_iris_csv(path: Path) -> Path:
    """The real iris measurements (bundled with scikit-learn) in the UCI ``iris.data`` layout: no header."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = {0: "Iris-setosa", 1: "Iris-versicolor", 2: "Iris-virginica"}
    lines = [",".join(f"{v:.1f}" for v in row) + f",{names[int(label)]}" for row, label in
             zip(iris.data, iris.target, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_churn_arff(path: Path, rows: int = 300, seed: int = 7) -> Path:
    """An ARFF in the layout of OpenML's KDDCup09_churn: numeric ``VarN`` columns (some with ``?`` for missing
    values), nominal ones, and the nominal target ``CHURN {-1,1}`` last. The churn label depends on two complete
    numeric columns, so a model can learn it."""
    rng = np.random.default_rng(seed)
    lines = ["% KDD Cup 2009 churn, small sample in the OpenML layout", "@relation KDDCup09_churn", ""]
    numeric = [f"Var{i}" for i in range(1, 9)]
    lines += [f"@attribute {name} numeric" for name in numeric]
    lines += ["@attribute Var191 {r__I,a}", "@attribute Var192 {qFpmfo8,1GdOj1KXzC,zKnr}"]
    lines += ["@attribute CHURN {-1,1}", "", "@data"]
    for _ in range(rows):
        values = rng.normal(size=len(numeric))
        churn = "1" if values[0] + 0.5 * values[1] > 0.9 else "-1"
        cells = [f"{v:.4f}" for v in values]
        for column in (5, 6):  # Var6 and Var7 are incomplete, as most KDD columns are
            if rng.random() < 0.3:
                cells[column] = "?"
        cells.append(rng.choice(["r__I", "a", "?"]))
        cells.append(rng.choice(["qFpmfo8", "1GdOj1KXzC", "zKnr"]))
        cells.append(churn)
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def cleaned_wine(tmp: Path) -> Path:
    """The bundled wine file, cleaned by the real clean step, as parquet."""
    out = tmp / "wine.parquet"
    if not out.exists():
        clean_file(WINE_CSV, RECIPES["winequality"], out)
    return out
