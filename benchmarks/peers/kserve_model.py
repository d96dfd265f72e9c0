"""KServe's Python model server as a user would write it for an MLflow model: a ten-line ``kserve.Model``.

Follows KServe's custom predictor guide (an ``InferRequest`` in, ``get_predict_response`` out; the model loaded at
start-up, ``ready`` set once it is). Run from ``.venv-kserve`` as
``python kserve_model.py --model_name <name> --http_port <port> --workers <n>``; ``MODEL_DIR`` is the downloaded MLflow
model. Every other option is ``kserve.model_server``'s own.
"""

import os

import mlflow.pyfunc
import pandas as pd
from kserve import InferRequest, Model, ModelServer, model_server
from kserve.utils.utils import get_predict_response


class MlflowModel(Model):
    def __init__(self, name):
        super().__init__(name)
        self.model = mlflow.pyfunc.load_model(os.environ["MODEL_DIR"])
        self.columns = [spec.name for spec in self.model.metadata.get_input_schema().inputs]
        self.ready = True

    def predict(self, payload: InferRequest, headers=None):
        rows = pd.DataFrame(payload.inputs[0].as_numpy(), columns=self.columns)
        return get_predict_response(payload, self.model.predict(rows), self.name)


if __name__ == "__main__":
    ModelServer().start([MlflowModel(model_server.args.model_name)])
