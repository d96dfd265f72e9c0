"""Register-and-promote: move the ``champion`` alias to the challenger only if it is better on held-out data.

Both models are scored on the same held-out rows of the current dataset, so the comparison is fair even when the
champion was trained on older data. The decision is recorded as tags on the challenger version; the alias move is
the last write, so a failure leaves the previous champion in place.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.failpoints import failpoint
from kfops.base.liveness import ProcessIdentity
from kfops.base.recipes import get_recipe
from kfops.base.tracking import require_tracking_server, short_error
from trainer.data import load_frame, split
from trainer.evaluate import evaluate
from trainer.train import CHAMPION

#: Version tag holding the whole decision as JSON (:meth:`Decision.as_dict`): how a run's outcome is read back.
DECISION_TAG = "kfops.decision_record"


@dataclass(frozen=True)
class Decision:
    """The outcome of one promotion."""

    model_name: str
    challenger_version: str
    previous_champion: str | None
    promoted: bool
    metric: str
    challenger_value: float
    champion_value: float | None
    reason: str

    @property
    def champion_uri(self) -> str:
        """``models:/<name>@champion`` (what serving deploys)."""
        return f"models:/{self.model_name}@{CHAMPION}"

    @property
    def champion_version(self) -> str:
        """The version that holds the champion alias after this decision."""
        return self.challenger_version if self.promoted else str(self.previous_champion)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable form, with the champion URI."""
        return {**asdict(self), "champion_uri": self.champion_uri, "champion_version": self.champion_version}


def _score(model_uri: str, recipe_name: str, dataset_uri: str) -> float:
    import mlflow

    recipe = get_recipe(recipe_name)
    parts = split(load_frame(dataset_uri), recipe.target_column, recipe.task)
    model = mlflow.pyfunc.load_model(model_uri)
    return evaluate(recipe.task, model, parts.x_test, parts.y_test)[recipe.objective_metric]


#: Registered-model tag holding the promotion lease (:class:`Lease`, as JSON).
LEASE_TAG = "kfops.promotion_lease"


@dataclass(frozen=True)
class Lease:
    """Who holds a model's promotion lease, and until when.

    The holder's host, pid and start time let a run on the same host see at once that the holder died (a run killed
    while promoting), instead of waiting for the expiry; a holder on another host can only expire.
    """

    token: str
    expires: float
    holder: ProcessIdentity | None

    def to_tag(self) -> str:
        """The tag's value."""
        holder = asdict(self.holder) if self.holder else None
        return json.dumps({"token": self.token, "expires": round(self.expires, 3), "holder": holder})

    @classmethod
    def from_tag(cls, value: str) -> Lease | None:
        """The lease a tag holds; ``None`` for no lease (an empty tag).

        The older form, ``<token> <expiry>``, has no holder and can only expire.
        """
        if not value.strip():
            return None
        try:
            raw = json.loads(value)
            holder = raw.get("holder")
            return cls(str(raw["token"]), float(raw["expires"]), ProcessIdentity(**holder) if holder else None)
        except (ValueError, TypeError, KeyError, AttributeError):
            token, _, expiry = value.partition(" ")
            try:
                return cls(token, float(expiry or 0), None)
            except ValueError:
                return cls(token, 0.0, None)  # unreadable: treated as expired

    def dead_holder(self) -> bool:
        """Whether the holder is known to be gone (a process of this host that is no longer running)."""
        return self.holder is not None and self.holder.alive() is False

    def stale(self, now: float) -> bool:
        """Whether another run may take the lease: it expired, or its holder is gone."""
        return self.expires < now or self.dead_holder()

    def describe(self) -> str:
        """Who holds it, for messages."""
        if self.holder is None:
            return "a run of an older kfops"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.holder.started))
        return f"the run with {self.holder} (started {started})"


def read_lease(client: Any, model_name: str) -> Lease | None:
    """The model's promotion lease, if any."""
    return Lease.from_tag(client.get_registered_model(model_name).tags.get(LEASE_TAG, ""))


def _report(message: str) -> None:
    # A step's output goes to the run log.
    print(message, flush=True)


@contextmanager
def promotion_lease(client: Any, model_name: str, ttl: float = 120, settle: float = 0.3, wait: float = 600,
                    report: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the model's promotion lease (a registered-model tag) while the body runs.

    MLflow has no compare-and-set, so the lease is taken by writing the tag, waiting ``settle`` seconds and reading
    it back: of runs that wrote at about the same time, only the last writer reads its own token. A lease whose
    holder died is taken over at once when the holder ran on this host (its pid no longer runs the process that took
    the lease); otherwise it expires after ``ttl`` seconds.

    Args:
        client: An ``MlflowClient``.
        model_name: The registered model (it must exist).
        ttl: Seconds after which a lease expires whoever held it.
        settle: Seconds between writing the tag and reading it back.
        wait: Seconds to wait for a live holder before giving up.
        report: Receives one line when the lease is taken over from a dead holder and when this run starts
            waiting for a live one (by default the step's output, i.e. the run log).

    Raises:
        KfopsError: The lease stayed taken for ``wait`` seconds.
    """
    say = report or _report
    me = Lease(uuid.uuid4().hex, 0.0, ProcessIdentity.current())
    deadline = time.monotonic() + wait
    waiting_for: str | None = None
    while True:
        lease = read_lease(client, model_name)
        now = time.time()
        if lease is None or lease.stale(now):
            if lease is not None and lease.expires >= now:
                say(f"taking over the promotion lease of {model_name!r} from {lease.describe()}: that process is "
                    "gone (killed while promoting)")
            mine = Lease(me.token, now + ttl, me.holder)
            client.set_registered_model_tag(model_name, LEASE_TAG, mine.to_tag())
            time.sleep(settle)
            current = read_lease(client, model_name)
            if current is not None and current.token == me.token:
                break
        elif waiting_for != lease.token:
            waiting_for = lease.token
            until = time.strftime("%H:%M:%S", time.localtime(lease.expires))
            say(f"waiting for the promotion lease of {model_name!r}: {lease.describe()} holds it (until {until} "
                "at the latest)")
        if time.monotonic() > deadline:
            raise KfopsError(f"another run has been promoting {model_name!r} for over {wait:.0f} s",
                             f"wait for it, or delete the registered model's tag {LEASE_TAG} if no run is left")
        time.sleep(settle * (1 + random.random()))  # noqa: S311 - jitter, not a secret
    try:
        yield
    finally:
        current = read_lease(client, model_name)
        if current is not None and current.token == me.token:
            client.delete_registered_model_tag(model_name, LEASE_TAG)


def _champion(client: Any, model_name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None


def _decide(recipe: Any, model_name: str, version: str, champion: str | None, challenger_value: float,
            dataset_uri: str) -> Decision:
    """Whether ``version`` (scoring ``challenger_value``) beats ``champion`` on the held-out rows."""
    from mlflow.exceptions import MlflowException

    metric = recipe.objective_metric
    if champion is None:
        return Decision(model_name, version, None, True, metric, challenger_value, None, "no champion yet")
    if champion == version:
        return Decision(model_name, version, version, True, metric, challenger_value, challenger_value,
                        "already the champion")
    try:
        champion_value = _score(f"models:/{model_name}/{champion}", recipe.name, dataset_uri)
    except (MlflowException, KeyError, ValueError, OSError) as error:
        raise KfopsError(f"champion version {champion} of {model_name!r} cannot score the held-out data "
                         f"({type(error).__name__}: {short_error(error)})",
                         f"if the dataset's schema changed on purpose, delete the alias "
                         f"(`mlflow.MlflowClient().delete_registered_model_alias({model_name!r}, 'champion')`) "
                         "and run again") from error
    better = recipe.better(challenger_value, champion_value)
    verb = "beats" if better else "does not beat"
    return Decision(model_name, version, champion, better, metric, challenger_value, champion_value,
                    f"{metric} {challenger_value:.4g} {verb} champion v{champion} ({champion_value:.4g}, "
                    f"{recipe.goal})")


@in_step(Step.REGISTER_AND_PROMOTE)
def register_and_promote(recipe_name: str, model_name: str, version: str, dataset_uri: str) -> Decision:
    """Compare version ``version`` with the current champion and promote it if it is strictly better.

    Raises:
        KfopsError: MLflow unreachable, the version does not exist, or a model cannot be scored. No alias moved.
    """
    require_tracking_server()
    import mlflow
    from mlflow.exceptions import MlflowException

    recipe = get_recipe(recipe_name)
    client = mlflow.MlflowClient()
    try:
        client.get_model_version(model_name, version)
    except MlflowException as error:
        raise KfopsError(f"model {model_name!r} has no version {version!r}",
                         "pass the version the train step registered") from error
    challenger_value = _score(f"models:/{model_name}/{version}", recipe.name, dataset_uri)
    # Runs promoting at the same time take turns: the comparison and the alias move happen under a lease, so the
    # last one to finish cannot put back a model the other one already beat.
    with promotion_lease(client, model_name):
        failpoint("register-and-promote:leased")
        decision = _decide(recipe, model_name, version, _champion(client, model_name), challenger_value, dataset_uri)
        _record(client, model_name, version, decision, challenger_value)
    return decision


def _record(client: Any, model_name: str, version: str, decision: Decision, challenger_value: float) -> None:
    """Tag the version with the decision and move the alias if it was promoted."""
    from mlflow.exceptions import MlflowException

    metric = decision.metric
    tags = {"kfops.decision": "promoted" if decision.promoted else "rejected",
            "kfops.decision_reason": decision.reason,
            f"kfops.heldout_{metric}": f"{challenger_value:.6g}",
            "kfops.compared_with": str(decision.previous_champion or "none"),
            "kfops.decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            DECISION_TAG: json.dumps(decision.as_dict(), sort_keys=True)}
    try:
        for key, value in tags.items():
            client.set_model_version_tag(model_name, version, key, value)
        if decision.promoted and decision.previous_champion != version:
            client.set_registered_model_alias(model_name, CHAMPION, version)
    except MlflowException as error:
        raise KfopsError(f"recording the decision for {model_name} v{version} failed: {short_error(error)}",
                         "check the MLflow server and run the step again (the champion alias was not moved)") \
            from error
