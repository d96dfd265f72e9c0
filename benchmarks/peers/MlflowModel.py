"""The stock seldon-core microservice as a user would write it for an MLflow model: ten lines, default settings.

``seldon-core-microservice MlflowModel`` imports this file from its working directory; ``MODEL_DIR`` is the
downloaded MLflow model.
"""

import os

import mlflow.pyfunc
import pandas as pd


class MlflowModel:
    def __init__(self):
        self.model = mlflow.pyfunc.load_model(os.environ["MODEL_DIR"])
        self.columns = [spec.name for spec in self.model.metadata.get_input_schema().inputs]

    def predict(self, X, features_names=None):
        return self.model.predict(pd.DataFrame(X, columns=features_names or self.columns))
