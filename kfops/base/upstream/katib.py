"""Katib, as kfops installs it (standalone) and hands it the workflow's Experiment.

Read at tag v0.19.0 of kubeflow/katib. The Experiment builder (:mod:`components.katib.experiment`) refuses what the
webhook and the suggestion services below would refuse, and the local executor (:mod:`infra.local.katib`) searches
the way each service does, or says where it cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kfops.base.upstream import Fact, Grant, Service, Source

REPO: Final = "kubeflow/katib"
#: The tag the facts were read at, the manifests kfops installs, and the Python API models' release.
VERSION: Final = "v0.19.0"


def _at(path: str, lines: str = "") -> Source:
    return Source(REPO, VERSION, path, lines)


#: The standalone install (its own certificate generator: no cert-manager). It also defines the ``kubeflow``
#: Namespace (with the injection label below), which kfops creates itself before installing anything.
STANDALONE: Final = Fact("manifests/v1beta1/installs/katib-standalone",
                         _at("manifests/v1beta1/installs/katib-standalone/kustomization.yaml", "4-41"))
NAMESPACE: Final = "kubeflow"
#: Katib's configuration: ConfigMap name and its key (the controller reads it at start-up).
CONFIG: Final = Fact(("katib-config", "katib-config.yaml"),
                     _at("manifests/v1beta1/installs/katib-standalone/kustomization.yaml", "30-36"))
#: The config switch that copies the trial's first container's securityContext to the injected metrics collector
#: (off unless set: pkg/apis/config/v1beta1/types.go#L63-65, used in inject_webhook.go#L244-250).
INJECT_SECURITY_CONTEXT: Final = Fact("init.controller.injectSecurityContext",
                                      _at("pkg/webhook/v1beta1/pod/inject_webhook.go", "244-250"))
#: The Experiment validator refuses Experiments of a namespace without this label, and the pod mutator injects the
#: metrics collector only there.
INJECTION_LABEL: Final = Fact({"katib.kubeflow.org/metrics-collector-injection": "enabled"},
                              _at("pkg/webhook/v1beta1/experiment/validation_webhook.go", "74-91"))
#: The webhooks' Service (validating and mutating configurations, both named ``katib.kubeflow.org``).
WEBHOOK: Final = Service("katib-controller", NAMESPACE, 443, _at("manifests/v1beta1/components/controller/service.yaml",
                                                                 "5-24"))

#: Experiment names: the webhook's regex (unanchored at the end) and length limit.
NAME_PATTERN: Final = Fact(r"^[a-z]([-a-z0-9]*[a-z0-9])?", _at("pkg/webhook/v1beta1/experiment/validator/validator.go",
                                                               "84-92"))
NAME_MAX_LENGTH: Final = Fact(40, _at("pkg/webhook/v1beta1/experiment/validator/validator.go", "84-92"))
#: What the defaulter sets when parallelTrialCount is absent (then parallel <= max is checked against it).
DEFAULT_PARALLEL_TRIAL_COUNT: Final = Fact(3, _at("pkg/apis/controller/experiments/v1beta1/constants.go", "21"))
#: Distributions a parameter may name.
DISTRIBUTIONS: Final = Fact(("uniform", "logUniform", "normal", "logNormal"),
                            _at("pkg/webhook/v1beta1/experiment/validator/validator.go", "255-303"))

#: The StdOut collector's default filter: group 1 the name, group 2 the value, which may be empty (``rmse=nan``
#: records ``""``: the trial succeeds with an empty value and every suggestion service fails on ``float("")``).
STDOUT_FILTER: Final = Fact(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)",
                            _at("pkg/metricscollector/v1beta1/common/const.go", "47"))
#: The collector wraps the primary container's command as ``sh -c "<command and args joined by spaces> 1>...``:
#: an argument with whitespace or quotes would be split or broken.
COMMAND_WRAPPING: Final = Fact("sh -c joined-by-spaces", _at("pkg/webhook/v1beta1/pod/utils.go", "145-221"))
#: The default conditions of a batch/v1 Job trial (applied by experiment_defaults.go#L103-109).
JOB_SUCCEEDED: Final = Fact('status.conditions.#(type=="Complete")#|#(status=="True")#',
                            _at("pkg/apis/controller/experiments/v1beta1/constants.go", "26-30"))
JOB_FAILED: Final = Fact('status.conditions.#(type=="Failed")#|#(status=="True")#',
                         _at("pkg/apis/controller/experiments/v1beta1/constants.go", "26-30"))
#: Finalizers Katib's controller removes, only from objects being deleted, and puts back on any that are not (so
#: clearing them by hand while the controller runs does not stick: experiment_controller_util.go#L98-123). Without
#: the controller, deletion hangs on them; the Trial's also needs katib-db-manager to answer
#: (trial_controller_util.go#L152-173). Teardown therefore deletes Experiments and waits, Katib still running.
EXPERIMENT_FINALIZER: Final = Fact("update-prometheus-metrics",
                                   _at("pkg/controller.v1beta1/experiment/experiment_controller_util.go", "35-37"))
TRIAL_FINALIZER: Final = Fact("clean-metrics-in-db", _at("pkg/controller.v1beta1/trial/trial_controller_util.go",
                                                         "37-39"))
#: Label Katib puts on an Experiment's Trials (pkg/controller.v1beta1/consts/const.go#L67).
EXPERIMENT_LABEL: Final = "katib.kubeflow.org/experiment"

#: The pod mutator that injects the metrics collector. Upstream gives it no failurePolicy (so ``Fail``) and selects
#: every pod of a namespace with :data:`INJECTION_LABEL`; its matchConditions exempt only requests made by
#: katib-controller's ServiceAccount, not the ReplicaSet controller that creates katib-controller's own pod, so in
#: a labelled namespace no pod can start while Katib is down, Katib's own included (kubeflow/katib#1261; v0.17.0's
#: objectSelector that avoided this was replaced in v0.18.0). The mutator itself lets through every pod that is not
#: a trial's (pkg/webhook/v1beta1/pod/inject_webhook.go#L110-129), so kfops adds an objectSelector: only pods that
#: carry :data:`TRIAL_POD_LABEL` are sent to it, and kfops' trial template carries it.
POD_MUTATOR: Final = Fact(("katib.kubeflow.org", "mutator.pod.katib.kubeflow.org"),
                          _at("manifests/v1beta1/components/webhook/webhooks.yaml", "51-74"))
#: The label kfops puts on its trial pods to opt in to the pod mutator (the key Katib's own v0.17.0 objectSelector
#: used; at v0.19.0 Katib reads it only on Namespaces, validation_webhook.go#L83).
TRIAL_POD_LABEL: Final = Fact({"katib.kubeflow.org/metrics-collector-injection": "enabled"},
                              _at("pkg/webhook/v1beta1/pod/inject_webhook.go", "110-129"))

#: What the tune step does with the API: create and follow its Experiment, read its Trials.
CLIENT_GRANTS: Final = (
    *(Grant("kubeflow.org", "experiments", verb, "the tune step creates and follows its Experiment",
            _at("manifests/v1beta1/installs/katib-with-kubeflow/kubeflow-katib-roles.yaml", "14-48"))
      for verb in ("create", "get", "list", "watch")),
    *(Grant("kubeflow.org", "trials", verb, "the tune step reads the Experiment's Trials",
            _at("manifests/v1beta1/installs/katib-with-kubeflow/kubeflow-katib-roles.yaml", "14-48"))
      for verb in ("get", "list", "watch")),
)


def _int_at_least(low: int) -> Callable[[str], bool]:
    return lambda value: int(value) >= low


def _float_between(low: float, high: float) -> Callable[[str], bool]:
    return lambda value: low < float(value) < high


@dataclass(frozen=True)
class Setting:
    """One ``algorithmSettings`` entry a suggestion service accepts: its type and the rule it checks."""

    type: Callable[[str], Any]
    rule: str
    valid: Callable[[str], bool] = lambda _value: True


@dataclass(frozen=True)
class Algorithm:
    """A suggestion service's algorithm: the library behind it and what it accepts.

    Attributes:
        service: Katib's suggestion service (image) that runs it.
        library: The library and version that image pins.
        settings: The ``algorithmSettings`` it accepts (any other name fails the Experiment).
        log_uniform: How it treats ``distribution: logUniform``: ``honoured``, ``ignored`` (uniform in the
            parameter's own scale) or ``always`` (every double is sampled log-uniformly, whatever it asks).
        min_numeric: Fewest int/double parameters it can search (cmaes needs a two-dimensional space).
        source: Where the settings are parsed and validated.
    """

    service: str
    library: str
    settings: Mapping[str, Setting]
    log_uniform: str
    source: Source
    min_numeric: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


_RANDOM_STATE = Setting(int, ">= 0", _int_at_least(0))

#: The algorithms of the standalone katib-config, by name.
ALGORITHMS: Final[Mapping[str, Algorithm]] = {
    "random": Algorithm("suggestion-hyperopt", "hyperopt==0.2.5", {"random_state": _RANDOM_STATE}, "honoured",
                        _at("pkg/suggestion/v1beta1/hyperopt/service.py", "70-143")),
    "tpe": Algorithm(
        "suggestion-hyperopt", "hyperopt==0.2.5",
        {"gamma": Setting(float, "in (0, 1)", _float_between(0, 1)),
         "prior_weight": Setting(float, "> 0", lambda v: float(v) > 0),
         "n_EI_candidates": Setting(int, "> 0", _int_at_least(1)),
         "random_state": _RANDOM_STATE},
        "honoured", _at("pkg/suggestion/v1beta1/hyperopt/service.py", "70-125"),
        notes=("n_startup_jobs is the number of trials requested at once (hyperopt/base_service.py#L287-L313)",)),
    "multivariate-tpe": Algorithm(
        "suggestion-optuna", "optuna==3.3.0",
        {"n_startup_trials": Setting(int, ">= 0", _int_at_least(0)),
         "n_ei_candidates": Setting(int, ">= 0", _int_at_least(0)), "random_state": _RANDOM_STATE},
        "honoured", _at("pkg/suggestion/v1beta1/optuna/service.py", "72-159")),
    "grid": Algorithm(
        "suggestion-optuna", "optuna==3.3.0", {"random_state": _RANDOM_STATE}, "ignored",
        _at("pkg/suggestion/v1beta1/optuna/service.py", "221-261"),
        notes=("double parameters need a step; maxTrialCount may not exceed the number of combinations",)),
    "cmaes": Algorithm(
        "suggestion-goptuna", "github.com/c-bata/goptuna v0.8.0",
        {"random_state": Setting(int, "an integer"), "sigma": Setting(float, "a number"),
         "restart_strategy": Setting(str, "ipop, bipop or none", lambda v: v in ("ipop", "bipop", "none"))},
        "ignored", _at("pkg/suggestion/v1beta1/goptuna/converter.go", "38-108"), min_numeric=2,
        notes=("goptuna ignores unknown setting names; kfops refuses them instead",)),
    "bayesianoptimization": Algorithm(
        "suggestion-skopt", "scikit-optimize>=0.9.0",
        {"base_estimator": Setting(str, "GP, RF, ET or GBRT", lambda v: v in ("GP", "RF", "ET", "GBRT")),
         "n_initial_points": Setting(int, ">= 0", _int_at_least(0)),
         "acq_func": Setting(str, "gp_hedge, LCB, EI, PI, EIps or PIps",
                             lambda v: v in ("gp_hedge", "LCB", "EI", "PI", "EIps", "PIps")),
         "acq_optimizer": Setting(str, "auto, sampling or lbfgs", lambda v: v in ("auto", "sampling", "lbfgs")),
         "random_state": _RANDOM_STATE},
        "always", _at("pkg/suggestion/v1beta1/skopt/service.py", "75-165"),
        notes=("every double is skopt.space.Real(min, max, 'log-uniform') (skopt/base_service.py#L58-L87): its "
               "min must be above zero",)),
}
