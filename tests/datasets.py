"""Small datasets in the real formats of the recipes' sources, written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.clean import clean_file
from kfops.base.paths import BUNDLED_DATA
from kfops.base.recipes import RECIPES

WINE_CSV = BUNDLED_DATA / "winequality-red.csv"


def _sklearn_iris() -> Path:
    import importlib.util

    # Found without importing scikit-learn (seconds): every test worker imports this module while collecting.
    spec = importlib.util.find_spec("sklearn")
    assert spec is not None, "scikit-learn is not installed"
    assert spec.submodule_search_locations, "scikit-learn is not a package"
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "iris.csv"


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


#: KDD Cup 2009 (small, 230 variables) as OpenML's KDDCup09_churn has it: Var1-Var190 numeric, Var191-Var230 nominal.
#: Entirely empty in the real data: these 16 numeric variables and the nominal Var209 and Var230 (declared numeric
#: here, as a converter that sees only missing values types them; OpenML counts 192 numeric and 38 nominal features).
KDD_EMPTY = (8, 15, 20, 31, 32, 39, 42, 48, 52, 55, 79, 141, 167, 169, 175, 185, 209, 230)
#: The only complete numeric variables of the real data.
KDD_COMPLETE_NUMERIC = (57, 73, 113)
#: Numeric variables missing in about 10-15% of the rows (most others are missing in 70-99%).
KDD_MOSTLY_PRESENT = (6, 7, 13, 21, 22, 24, 25, 28, 35, 38, 44, 65, 74, 76, 78, 81, 83, 85, 109, 112, 119, 123, 125,
                      126, 132, 133, 134, 140, 143, 144, 149, 153, 160, 163, 173, 181)
#: Nominal variables: (distinct values in the whole file, share of missing values), as in the real data. The header
#: declares every value of the whole file, so its high-cardinality lines are as long as the real ones.
KDD_NOMINAL: dict[int, tuple[int, float]] = {
    191: (1, 0.98), 192: (361, 0.01), 193: (51, 0.0), 194: (3, 0.74), 195: (23, 0.0), 196: (4, 0.0),
    197: (225, 0.003), 198: (4291, 0.0), 199: (5073, 0.0001), 200: (15415, 0.51), 201: (2, 0.74), 202: (5713, 0.0),
    203: (5, 0.003), 204: (100, 0.0), 205: (3, 0.04), 206: (21, 0.11), 207: (14, 0.0), 208: (2, 0.003),
    210: (6, 0.0), 211: (2, 0.0), 212: (81, 0.0), 213: (1, 0.98), 214: (15415, 0.51), 215: (1, 0.99),
    216: (2016, 0.0), 217: (13990, 0.014), 218: (2, 0.014), 219: (22, 0.10), 220: (4291, 0.0), 221: (7, 0.0),
    222: (4291, 0.0), 223: (4, 0.10), 224: (1, 0.98), 225: (3, 0.52), 226: (23, 0.0), 227: (7, 0.0),
    228: (30, 0.0), 229: (4, 0.57),
}


def _kdd_token(rng: np.random.Generator, length: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=length))


def write_kdd_churn_arff(path: Path, rows: int = 2000, seed: int = 2009) -> Path:
    """An ARFF with the schema and quirks of OpenML's KDDCup09_churn (the churn recipe's real file), ``rows`` long.

    230 attributes ``Var1``..``Var230`` (192 numeric, 38 nominal with up to 15,415 declared values), missing values
    as ``?`` everywhere but in three numeric variables, 18 variables entirely missing, integer and decimal numbers
    (some negative, some large), and the nominal label ``CHURN {-1,1}``, 1 for about 7% of the rows as in the real
    data. Churn depends on the complete variables Var73 and Var113, so a model can learn something.
    """
    rng = np.random.default_rng(seed)
    nominal_values = {var: [_kdd_token(rng, int(rng.integers(4, 14))) for _ in range(count)]
                      for var, (count, _) in KDD_NOMINAL.items()}
    lines = ["@relation KDDCup09_churn", ""]
    for var in range(1, 231):
        if var in KDD_NOMINAL:
            lines.append(f"@attribute Var{var} {{{','.join(nominal_values[var])}}}")
        else:
            lines.append(f"@attribute Var{var} numeric")
    lines += ["@attribute CHURN {-1,1}", "", "@data"]

    columns: list[list[str]] = []
    for var in range(1, 231):
        if var in KDD_EMPTY:
            columns.append(["?"] * rows)
            continue
        if var in KDD_NOMINAL:
            count, missing = KDD_NOMINAL[var]
            # A few values are frequent, the rest rare (the real columns' shape).
            weights = 1.0 / np.arange(1, count + 1) ** 1.1
            picked = rng.choice(count, size=rows, p=weights / weights.sum())
            cells = [nominal_values[var][i] for i in picked]
        elif var == 73:
            cells = [str(int(v)) for v in rng.integers(4, 265, size=rows)]
        elif var == 113:
            cells = [f"{v:.1f}" for v in rng.normal(0, 250_000, size=rows)]
        elif var % 3 == 0:  # counts that come in steps, e.g. Var7's multiples of 7
            cells = [str(int(v) * 7) for v in rng.poisson(2, size=rows)]
        elif var % 3 == 1:
            cells = [str(int(v)) for v in rng.lognormal(6, 2, size=rows)]
        else:
            cells = [f"{v:.6g}" for v in rng.normal(0, 1e5, size=rows)]
        if var in KDD_NOMINAL:
            missing = KDD_NOMINAL[var][1]
        elif var in KDD_COMPLETE_NUMERIC:
            missing = 0.0
        elif var in KDD_MOSTLY_PRESENT:
            missing = rng.uniform(0.10, 0.15)
        else:
            missing = rng.uniform(0.70, 0.99)
        absent = rng.random(rows) < missing
        columns.append(["?" if gone else cell for cell, gone in zip(cells, absent, strict=True)])

    var73 = np.array([int(v) for v in columns[72]])
    var113 = np.array([float(v) for v in columns[112]])
    odds = -0.3 - 0.03 * var73 + 0.000002 * var113
    churn = np.where(rng.random(rows) < 1 / (1 + np.exp(-odds)), "1", "-1")
    columns.append(list(churn))
    lines += [",".join(row) for row in zip(*columns, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path
