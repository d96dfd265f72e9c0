"""Loading the cleaned dataset and splitting it the same way in every trial and in the final training."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from kfops.base.errors import KfopsError

#: Fixed so that every trial, the final training and the champion comparison see the same rows.
SPLIT_SEED = 20240611
VALID_SHARE = 0.15
TEST_SHARE = 0.15


@dataclass(frozen=True)
class Split:
    """Train/validation/test partitions of one dataset (features and target separately)."""

    x_train: pd.DataFrame
    y_train: pd.Series
    x_valid: pd.DataFrame
    y_valid: pd.Series
    x_test: pd.DataFrame
    y_test: pd.Series

    @property
    def x_fit(self) -> pd.DataFrame:
        """Training plus validation rows: what the final model is fitted on once tuning is done."""
        return pd.concat([self.x_train, self.x_valid])

    @property
    def y_fit(self) -> pd.Series:
        """Targets of :attr:`x_fit`."""
        return pd.concat([self.y_train, self.y_valid])


class _Unreadable(Exception):
    """Why a dataset could not be read, before it is attributed to a step."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(cause)
        self.cause, self.fix = cause, fix


def load_frame(uri: str) -> pd.DataFrame:
    """Read a cleaned parquet dataset from ``s3://``, ``file://`` or a local path.

    Cached per URI: the local Katib executor loads the data once in its fork server and every trial inherits it.
    Dataset URIs are content-addressed, so a cached URI can never go stale.

    Raises:
        KfopsError: Missing object or file, unreachable store, or not a parquet file.
    """
    try:
        return _read(uri)
    except _Unreadable as error:
        raise KfopsError(error.cause, error.fix) from error


@functools.lru_cache(maxsize=4)
def _read(uri: str) -> pd.DataFrame:
    parsed = urlparse(uri)
    try:
        if parsed.scheme == "s3":
            return pd.read_parquet(io.BytesIO(_s3_bytes(uri)))
        path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
        if not path.is_file():
            raise _Unreadable(f"dataset {uri} does not exist", "pass the URI the store step returned")
        return pd.read_parquet(path)
    except (ValueError, OSError) as error:
        raise _Unreadable(f"{uri} is not a readable parquet dataset ({error})",
                          "pass the URI the store step returned") from error


def _s3_bytes(uri: str) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    from kfops.base.storage import describe_endpoint_error, parse_s3_uri, s3_client

    bucket, key = parse_s3_uri(uri)
    try:
        return bytes(s3_client().get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as error:
        raise _Unreadable(f"cannot read {uri}: {error.response['Error'].get('Code')}",
                          "check that the store step ran and the S3 credentials are valid") from error
    except BotoCoreError as error:
        raise _Unreadable(f"cannot read {uri}: {describe_endpoint_error(error)}",
                          "check that the object store is up (locally: `kfops local status`)") from error


def split(frame: pd.DataFrame, target: str, task: str) -> Split:
    """Deterministic train/validation/test split; stratified by class for classification."""
    from sklearn.model_selection import train_test_split

    if target not in frame.columns:
        raise KfopsError(f"target column {target!r} not in the dataset",
                         "pass a dataset produced by the clean step for this recipe")
    features = frame.drop(columns=[target])
    labels = frame[target]
    stratify = labels if task == "classification" else None
    x_rest, x_test, y_rest, y_test = train_test_split(
        features, labels, test_size=TEST_SHARE, random_state=SPLIT_SEED, stratify=stratify)
    stratify_rest = y_rest if task == "classification" else None
    x_train, x_valid, y_train, y_valid = train_test_split(
        x_rest, y_rest, test_size=VALID_SHARE / (1 - TEST_SHARE), random_state=SPLIT_SEED, stratify=stratify_rest)
    return Split(x_train, y_train, x_valid, y_valid, x_test, y_test)
