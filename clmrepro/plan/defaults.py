"""Resolve every null knob of a spec to its effective value, per dataset (docs/reference.md §1).

Defaults follow the authors' code where it settles a question, else the paper's text.
"""

from __future__ import annotations

from clmrepro.kinds import attacks as attack_kinds
from clmrepro.kinds import checks as check_kinds
from clmrepro.kinds import regimes
from clmrepro.spec.models import DATASET_SIZES, Attack, Dataset, Experiment, Population, Training


def is_mnist(dataset: Dataset) -> bool:
    return dataset.name in ("mnist-5k", "mnist")


def dataset_block(dataset: Dataset) -> dict:
    n_train, n_test = DATASET_SIZES[dataset.name]
    return {"name": dataset.name, "root": dataset.root, "split_seed": dataset.split_seed,
            "n_train": dataset.n_train or n_train, "n_test": dataset.n_test or n_test}


def _pick(value, default):
    return default if value is None else value


def training_block(population: Population, experiment: Experiment) -> dict:
    t: Training = population.training
    mnist = is_mnist(experiment.dataset)
    # A baseline that starts from a population (DVERGE from a ULM) trains with the method's
    # own full rate, as its code does; only the paper's retraining lowers it.
    regime = population.regime
    retrain = regime.from_ is not None and not regimes.get(regime.kind).BASELINE
    # Paper §4: retraining lowers the rate (1e-4 LeNet5, 1e-2 ResNet18) so the submodels
    # do not fall back into the minimum they reached as a ULM.
    if mnist:
        lr = 1e-4 if retrain else 1e-3
    else:
        lr = 1e-2 if retrain else 0.1
    # ULM epochs are an open point: 5 on MNIST (the authors' CLM runs); on CIFAR-10 the
    # cosine period of the code (T_max 200) for training, the paper's 150 for retraining.
    epochs = 5 if mnist else (150 if retrain else 200)
    return {
        "epochs": _pick(t.epochs, epochs),
        "batch_size": _pick(t.batch_size, 100 if mnist else 200),
        "optimizer": _pick(t.optimizer, "adam" if mnist else "sgd"),
        "lr": _pick(t.lr, lr),
        "momentum": _pick(t.momentum, 0.0 if mnist else 0.9),
        "weight_decay": _pick(t.weight_decay, 0.0 if mnist else 5e-4),
        "schedule": _pick(t.schedule, "none" if mnist else "cosine"),
        "t_max": _pick(t.t_max, 200),
        "augment": _pick(t.augment, not mnist),
        "eval_batch_size": t.eval_batch_size,
    }


def regime_blocks(population: Population, experiment: Experiment) -> dict[str, dict | None]:
    """The regime's ``linking``, ``adversarial`` and ``diversity`` blocks, every knob resolved
    by its module (clmrepro.kinds.regimes); None where the regime has no such block."""
    regime = population.regime
    return regimes.get(regime.kind).params(regime, mnist=is_mnist(experiment.dataset),
                                           architecture=experiment.architecture_name)


def linking_block(population: Population, experiment: Experiment) -> dict | None:
    """PRSE (CLM, CLM-Adv)."""
    return regime_blocks(population, experiment)["linking"]


def diversity_block(population: Population, experiment: Experiment) -> dict | None:
    """The joint-training loss of a baseline regime (core.training.diversity); None for the
    paper's regimes."""
    return regime_blocks(population, experiment)["diversity"]


def adversarial_block(population: Population, experiment: Experiment) -> dict | None:
    """PGD adversarial training (ULM-Adv, CLM-Adv)."""
    return regime_blocks(population, experiment)["adversarial"]


def pgd_alpha(experiment: Experiment) -> float:
    """The authors' PGD step: 0.01 on MNIST, 2/255 on CIFAR-10."""
    return 0.01 if is_mnist(experiment.dataset) else 2 / 255


def attack_params(attack: Attack, eps: float, experiment: Experiment) -> dict:
    """Every parameter the attack step passes to its attack; the step fills none itself
    (torchattacks 3.5.1 changed the defaults of 2.14, docs/reference.md §2).  Each kind
    resolves its own knobs (clmrepro.kinds.attacks)."""
    return attack_kinds.get(attack.kind).params(attack, eps, pgd_alpha(experiment))


def n_samples(experiment: Experiment) -> int:
    n_test = dataset_block(experiment.dataset)["n_test"]
    chosen = experiment.evaluation.n_samples
    return n_test if chosen is None else chosen


def samples_block(experiment: Experiment) -> dict[str, int]:
    """Test images per threat model the attack job runs: the paper protocol's N, and the stated
    transfer/adaptive subsets (their first images; null → N)."""
    evaluation = experiment.evaluation
    n = n_samples(experiment)
    chosen = {"paper": n, "transfer": _pick(evaluation.transfer_samples, n),
              "adaptive": _pick(evaluation.adaptive_samples, n)}
    return {model: chosen[model] for model in evaluation.threat_models}


def execution_block(experiment: Experiment) -> dict[str, str | float]:
    """The spec's `execution:` block with every key present but an unset ``gpu_memory_gb``
    (left out by the spec model: job files as before the knob); `population: auto` is resolved
    by the step at run time (batched on CUDA, sequential on CPU).  A set ``gpu_memory_gb``
    stays in the block, and ``plan.memory.size_to_card`` adds ``max_models`` to the jobs that
    would not fit."""
    return experiment.execution.model_dump(mode="json")


def sanity_block(experiment: Experiment, population_id: str) -> dict | None:
    """The checks' job params (core.attacks.sanity): every knob resolved, and each check's
    own knobs where it runs (its module in clmrepro.kinds.checks).  The PGD checked is
    the grid's first PGD for this population (its steps, step and start) at the smallest of
    its budgets, unless the spec names a budget."""
    sanity = experiment.evaluation.sanity
    if sanity is None:
        return None
    attacks = [a for a in experiment.evaluation.attacks
               if a.populations is None or population_id in a.populations]
    pgds = [a for a in attacks if a.kind == "pgd"]
    if pgds:
        pgd = pgds[0]
        steps, alpha, start = pgd.steps, _pick(pgd.alpha, pgd_alpha(experiment)), pgd.random_start
        eps = _pick(sanity.eps, min(pgd.eps))
    else:  # no PGD in the grid: the authors' PGD (40 steps, random start)
        steps, alpha, start = 40, pgd_alpha(experiment), True
        eps = _pick(sanity.eps, min(attacks[0].eps) if attacks else 0.3)
    threats = [t for t in sanity.threat_models if t in experiment.evaluation.threat_models]
    block = {"checks": list(sanity.checks), "threat_models": threats, "samples": sanity.samples,
             "eps": eps, "pgd": {"alpha": alpha, "steps": steps, "random_start": start}}
    # each check that runs adds its own knobs (clmrepro.kinds.checks)
    knobs = sanity.model_dump()
    for job in check_kinds.jobs(sanity.checks):
        block.update(job.job_params(knobs))
    return block
