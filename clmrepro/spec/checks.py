"""Checks that span several fields of a parsed spec; each problem names its own path."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path as FilePath

from clmrepro.fields import DATASET_CHANNELS
from clmrepro.kinds import regimes
from clmrepro.spec.models import DATASET_SIZES, Experiment, Spec

Path = tuple[str | int, ...]

# LeNet5 takes 1×32×32 inputs, ResNet18 3×32×32 (docs/reference.md §1).
ARCHITECTURE_DATASETS = {"lenet5": ("mnist-5k", "mnist"), "resnet18": ("cifar10", "fake-cifar10")}
MNIST_5K_TOTAL = 5000
N_CLASSES = 10  # every dataset of the spec language: MNIST's digits, CIFAR-10's classes


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str


def check_spec(spec: Spec) -> list[Problem]:
    problems: list[Problem] = []
    problems += _duplicates([e.id for e in spec.experiments], ("experiments",), "experiment")
    for index, experiment in enumerate(spec.experiments):
        problems += _check_experiment(experiment, ("experiments", index))
    problems += _dataset_roots(spec)
    return problems


def regime_warnings(spec: Spec) -> list[Problem]:
    """What the regimes' modules say about populations the spec accepts but their method was
    not designed for (ADP with as many members as classes or more): `clmrepro validate`
    prints them, the spec still runs."""
    problems = []
    for e, experiment in enumerate(spec.experiments):
        for p, population in enumerate(experiment.populations):
            for message in regimes.get(population.regime.kind).warnings(population, N_CLASSES):
                problems.append(Problem(("experiments", e, "populations", p, "size"),
                                        f"warning: population '{population.id}': {message}"))
    return problems


def _dataset_roots(spec: Spec) -> list[Problem]:
    """A spec prepares each dataset once (one data job, ``data-<name>``), so every experiment
    reads it from the same folder."""
    first: dict[str, tuple[str, str]] = {}
    problems = []
    for index, experiment in enumerate(spec.experiments):
        data = experiment.dataset
        if data.name not in first:
            first[data.name] = (data.root, experiment.id)
        elif posixpath.normpath(first[data.name][0]) != posixpath.normpath(data.root):
            root, other = first[data.name]
            problems.append(Problem(("experiments", index, "dataset", "root"),
                                    f"experiment '{other}' reads {data.name} from '{root}'; one "
                                    f"spec reads each dataset from one folder (got "
                                    f"'{data.root}')"))
    return problems


def _duplicates(ids: list[str], where: Path, what: str) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for index, value in enumerate(ids):
        if value in seen:
            problems.append(Problem((*where, index, "id"), f"duplicate {what} id (got '{value}')"))
        seen.add(value)
    return problems


def _check_experiment(experiment: Experiment, at: Path) -> list[Problem]:
    problems = []
    if isinstance(experiment.architecture, str):
        allowed = ARCHITECTURE_DATASETS[experiment.architecture]
        if experiment.dataset.name not in allowed:
            problems.append(Problem((*at, "architecture"), f"{experiment.architecture} does not "
                                    f"fit dataset {experiment.dataset.name}; it takes "
                                    f"{', '.join(allowed)} (got '{experiment.architecture}')"))
    else:
        problems += _check_factory(experiment, at)
    data = experiment.dataset
    full_train, full_test = DATASET_SIZES[data.name]
    n_train, n_test = data.n_train or full_train, data.n_test or full_test
    if data.name == "mnist-5k" and n_train + n_test > MNIST_5K_TOTAL:
        problems.append(Problem((*at, "dataset", "n_train"), f"n_train + n_test must be <= "
                                f"{MNIST_5K_TOTAL} for mnist-5k (got {n_train} + {n_test})"))
    elif data.name in ("mnist", "cifar10") and (n_train > full_train or n_test > full_test):
        problems.append(Problem((*at, "dataset", "n_train"), f"{data.name} has {full_train} "
                                f"training and {full_test} test images (got {n_train}, {n_test})"))
    chosen = experiment.evaluation.n_samples
    if chosen is not None and chosen > n_test:
        problems.append(Problem((*at, "evaluation", "n_samples"), f"must be <= n_test = {n_test} "
                                f"(got {chosen})"))
    problems += _check_subsets(experiment, n_test, (*at, "evaluation"))
    problems += _check_sanity(experiment, n_test, (*at, "evaluation", "sanity"))
    populations = {p.id: p for p in experiment.populations}
    duplicates = _duplicates([p.id for p in experiment.populations], (*at, "populations"),
                             "population")
    if duplicates:
        return problems + duplicates  # `from` cannot be resolved while ids repeat
    for index, population in enumerate(experiment.populations):
        fewest = regimes.get(population.regime.kind).MIN_SIZE
        if population.size < fewest:
            problems.append(Problem((*at, "populations", index, "size"), f"a {population.regime.kind} "
                                    f"population needs at least {fewest} submodels; one-model "
                                    f"reference rows are ulm or ulm-adv (got {population.size})"))
        weights = getattr(population.regime, "weights", None)
        if weights is not None:
            problems += _check_weights(experiment, population,
                                       (*at, "populations", index, "regime", "weights"))
        source = population.regime.from_
        where = (*at, "populations", index, "regime", "from")
        if source is None:
            continue
        if source in populations and not regimes.trained(populations[source].regime.kind):
            problems.append(Problem(where, f"'{source}' is your own weights (pretrained): "
                                    "retraining from them is not supported; train your "
                                    "architecture with the regime instead (got "
                                    f"'{source}')"))
        elif source not in populations:
            problems.append(Problem(where, f"names no population of this experiment; "
                                    f"allowed: {_names(populations, population.id)} (got '{source}')"))
        elif populations[source].size != population.size:
            problems.append(Problem(where, f"'{source}' has {populations[source].size} submodels, "
                                    f"this population {population.size}; sizes must match "
                                    f"(got '{source}')"))
    for index, cycle_member in _cycle_members(experiment):
        problems.append(Problem((*at, "populations", index, "regime", "from"),
                                f"`from` chain forms a cycle through '{cycle_member}'"))
    evaluation = experiment.evaluation
    problems += _unknown_populations(evaluation.populations, populations,
                                     (*at, "evaluation", "populations"))
    labels: set[tuple[str, float]] = set()
    for index, attack in enumerate(evaluation.attacks):
        where = (*at, "evaluation", "attacks", index)
        problems += _unknown_populations(attack.populations, populations, (*where, "populations"))
        label = attack.id or attack.kind
        if attack.kind == "arc":
            problems += _check_arc(attack, evaluation, where)
        for eps_index, eps in enumerate(attack.eps):
            if (label, eps) in labels:
                problems.append(Problem((*where, "eps", eps_index), f"attack '{label}' at this "
                                        f"eps appears twice; give one an `id` (got {eps:g})"))
            labels.add((label, eps))
    return problems


def _check_factory(experiment: Experiment, at: Path) -> list[Problem]:
    """A python architecture's factory imports, builds, takes the dataset's images and returns
    its classes (core.factory.check_fit), one problem per failure.  torch is imported here
    only, for specs that name a factory."""
    from clmrepro.core.factory import check_fit

    lines = check_fit(experiment.architecture_name, experiment.architecture_kwargs,
                      in_channels=DATASET_CHANNELS[experiment.dataset.name],
                      num_classes=N_CLASSES)
    problems = [Problem((*at, "architecture", "factory"), line) for line in lines]
    for index, population in enumerate(experiment.populations):
        regime = population.regime
        # a regime that picks layers by architecture (DVERGE's LAYERS) needs one named
        if getattr(regimes.get(regime.kind), "LAYERS", None) is not None \
                and not getattr(regime, "layer", None):
            problems.append(Problem((*at, "populations", index, "regime", "layer"),
                                    "DVERGE on your own architecture needs the layer whose "
                                    "features it distils: set regime.layer to a module name"))
    return problems


def _check_weights(experiment: Experiment, population, where: Path) -> list[Problem]:
    """Your own weights exist, load with weights_only, hold ``size`` members that fit the
    architecture, with finite values (core.external); one problem naming the first failure.
    torch is imported here only, for specs with a pretrained population."""
    weights = population.regime.weights
    if not FilePath(weights).exists():
        return [Problem(where, f"no such file or folder (relative to the working directory "
                               f"{FilePath.cwd()}; got '{weights}')")]
    from clmrepro.core.checkpoints import ArtifactError
    from clmrepro.core.external import load_external_population
    from clmrepro.core.factory import FactoryError

    try:
        load_external_population(weights, architecture=experiment.architecture_name,
                                 kwargs=experiment.architecture_kwargs, size=population.size,
                                 in_channels=DATASET_CHANNELS[experiment.dataset.name],
                                 num_classes=N_CLASSES)
    except (ArtifactError, FactoryError) as error:
        return [Problem(where, str(error))]
    return []


def _check_arc(attack, evaluation, where: Path) -> list[Problem]:
    problems = []
    if "adaptive" not in evaluation.threat_models:
        problems.append(Problem((*where, "kind"), "arc attacks the population as a whole: the "
                                "evaluation's threat_models must include adaptive (got "
                                f"{', '.join(evaluation.threat_models)})"))
    if attack.candidates == "topk" and attack.topk is None:
        problems.append(Problem((*where, "topk"), "candidates: topk needs topk, the number of "
                                "largest logits searched (got null)"))
    adaptive = evaluation.adaptive_samples or evaluation.n_samples
    if attack.samples is not None and adaptive is not None and attack.samples > adaptive:
        problems.append(Problem((*where, "samples"), f"must be <= {adaptive}, the adaptive "
                                f"threat model's test images (got {attack.samples})"))
    if attack.candidates == "all" and attack.topk is not None:
        problems.append(Problem((*where, "topk"), f"topk is used with candidates: topk only "
                                f"(got {attack.topk} with candidates: all)"))
    return problems


def _check_sanity(experiment: Experiment, n_test: int, at: Path) -> list[Problem]:
    sanity = experiment.evaluation.sanity
    if sanity is None:
        return []
    problems = []
    n_samples = experiment.evaluation.n_samples or n_test
    if sanity.samples > n_samples:
        problems.append(Problem((*at, "samples"), f"must be <= {n_samples}, the test images "
                                f"the grid attacks (got {sanity.samples})"))
    missing = [t for t in sanity.threat_models if t not in experiment.evaluation.threat_models]
    if missing:
        problems.append(Problem((*at, "threat_models"), f"the evaluation does not run "
                                f"{', '.join(missing)}; allowed: "
                                f"{', '.join(experiment.evaluation.threat_models)}"))
    return problems


def _check_subsets(experiment: Experiment, n_test: int, at: Path) -> list[Problem]:
    """transfer/adaptive sample sizes are the first images of the paper protocol's set."""
    evaluation = experiment.evaluation
    n_samples = evaluation.n_samples
    if n_samples is None or n_samples > n_test:
        limit, name = n_test, "n_test"
    else:
        limit, name = n_samples, "n_samples"
    problems = []
    for key in ("transfer_samples", "adaptive_samples"):
        value = getattr(evaluation, key)
        if value is not None and value > limit:
            problems.append(Problem((*at, key), f"must be <= {name} = {limit}, the paper "
                                    f"protocol's test images it is a subset of (got {value})"))
    return problems


def _names(populations: dict, exclude: str) -> str:
    names = [name for name in populations if name != exclude]
    return ", ".join(names) or "none"


def _unknown_populations(chosen: list[str] | None, populations: dict, where: Path) -> list[Problem]:
    if chosen is None:
        return []
    return [Problem((*where, i), f"names no population of this experiment; allowed: "
                    f"{', '.join(populations)} (got '{name}')")
            for i, name in enumerate(chosen) if name not in populations]


def _cycle_members(experiment: Experiment) -> list[tuple[int, str]]:
    source = {p.id: p.regime.from_ for p in experiment.populations}
    members = []
    for index, population in enumerate(experiment.populations):
        seen, current = set(), population.id
        while current is not None and current in source and current not in seen:
            seen.add(current)
            current = source[current]
        if current == population.id:
            members.append((index, population.id))
    return members


def population_order(experiment: Experiment) -> list[str]:
    """Populations ordered so that every `from` comes before its user (the spec is acyclic)."""
    source = {p.id: p.regime.from_ for p in experiment.populations}
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if source.get(name):
            visit(source[name])
        done.append(name)

    for population in experiment.populations:
        visit(population.id)
    return done
