"""Seconds per job from measured unit costs, for `clmrepro plan` and the executors' `runtime`.

The unit costs come from a calibration (``clmrepro calibrate``; format in
``clmrepro.calibration.files``): seconds per image and submodel of a training step (``T``),
a forward pass at batch size b (``F(b)``), an input gradient (``G``), each attack's
gradient step (``A_kind``), a gradient through RandomDispatch of n submodels (``D(n)``), and
the start-up of a job (``S_stage``).  The ``batched`` variants (``T_b``, ``G_each``,
``G_all``, ``F_all``) are the population-batched calls of ``core.stacked``.  With n
submodels, N images, E epochs:

- train / retrain: ``S + E * n * (N_train * (T + k * A_pgd) + N_test * F(eval_batch))`` with
  k the PGD steps of adversarial training (0 otherwise); batched (ULM, or CLM with the
  lockstep schedule): ``T_b``, ``G_each`` and ``F_all`` instead.  Each regime prices its own
  training (clmrepro.kinds.regimes, ``price``): the formula above for the paper's, per-image
  factors of ``T`` measured against ULM for the diversity baselines' joint training.
- attack (one job per population, attack and eps; ``samples`` per threat model):
  crafting, per image: paper ``C``; transfer ``n * C`` (batched: ``n * steps * G_each``);
  adaptive ``n * steps * G`` for FGSM/PGD/MI-FGSM (batched ``G_all``), ``steps * eot * D(n)``
  for EOT-PGD, AutoAttack ``rand`` on RandomDispatch for AutoAttack.  ``C`` is
  ``steps * A_kind`` (EOT-PGD against one submodel runs as PGD: ``steps * A_pgd``).  AutoAttack standard per image:
  ``clean * s * U_ce + p_ce * s * U_t + p_t * s * U_fab + p_fab * q * U_sq`` with s steps,
  q Square queries and p_x the fraction of points still correct after component x
  (measured on a quickly trained standard and adversarially trained model: the regime of
  the population picks which); ``rand`` runs APGD-CE and APGD-DLR with ``eot`` gradients per
  step: ``(clean + p_ce) * s * (U_ce - G + eot * D(n))``.  Scoring (when the job also
  scores): ``n`` forwards per image for paper and adaptive, ``n * n`` for transfer.
- evaluate: benign ``n * N * F(b) + n * saliency_samples * G``; a scoring-only job (the
  earlier layout) scores as above.
- report: ``S_report + R + r * inputs`` (R fixed, r per input file: two runs of the report
  on the report fixtures, all inputs and a third of them; most of the per-input work is one
  figure per scores file).

Every estimate includes the job's start-up.  CPU costs are measured at the calibration's
thread count and scaled to the job's ``threads`` by the measured speed-up.  A variant
(precision, memory format) the calibration lacks falls back to fp32 / contiguous; an
architecture it lacks falls back to the built-in constants below.  The calibration is always
passed in (no module state): ``compile_spec`` prices a plan with the one it is given, by default
``calibration_or_reference(None)``, the shipped reference calibration
(``clmrepro.calibration.files.SHIPPED_CALIBRATION``) whatever this machine is, so a compiled
plan is the same bytes everywhere; `clmrepro plan` shows this machine's figures
(``for_this_machine``).
"""

from __future__ import annotations

import copy
import math
import os

from clmrepro.plan.architectures import priced_as
from clmrepro.calibration.files import machine_calibration, reference_calibration
from clmrepro.kinds import attacks as attack_kinds
from clmrepro.kinds import checks as check_kinds
from clmrepro.kinds.checks.base import Costs
from clmrepro.kinds import regimes
from clmrepro.plan import paths
from clmrepro.plan.samples import images_per_threat

AUTHORS_EXECUTION = {"population": "sequential", "memory_format": "contiguous",
                     "precision": "fp32", "clm_schedule": "sequential"}
# Seconds the data step spends checking and decoding a dataset whose files are on disk, measured
# here (2 shared cores, 1 thread) on full-size made-up files: 0.80, 2.36 and 5.07 s.
DATA_DECODE_S = {"mnist-5k": 0.8, "mnist": 2.4, "cifar10": 5.1}


def _builtin(device: str) -> dict:
    """Constants for when no calibration is at hand.  CPU: docs/reference.md §6 (10 LeNet5 × 2
    epochs × 4,000 images in 9.6 s, i.e. 1.2e-4 s per image; PGD-40 on 500 images 3.5 s, i.e.
    1.75e-4 per step); ResNet18 on one CPU core ~50× LeNet5.  CUDA: ResNet18 ~2,000 training
    images/s on an A100-class GPU (5e-4 s); LeNet5 is bound by kernel launches there.
    Within a factor of a few."""
    if device == "cuda":
        lenet, resnet = (1.5e-5, 6e-6, 1.5e-5), (5e-4, 1.7e-4, 3.5e-4)
        startup = {"train": 8.0, "attack": 8.0, "evaluate": 8.0, "report": 6.0}
    else:
        lenet, resnet = (1.2e-4, 4e-5, 1.75e-4), (2e-2, 5e-3, 1.2e-2)
        startup = {"train": 4.0, "attack": 4.5, "evaluate": 4.5, "report": 5.0}

    def variant(train, forward, grad, sizes):
        return {"batch_sizes": sizes, "train": train, "grad": grad,
                "forward": {str(sizes["attack"]): forward}, "batched": None}

    sizes = {"train": 100, "attack": 100, "eval": 1000}
    return {
        "schema_version": 1, "name": f"built-in-{device}", "source": "clmrepro.plan.estimate",
        "note": "built-in constants (no calibration found); within a factor of a few",
        "machine": {"device": device, "device_name": "reference", "cpu_count": 1},
        "threads": 1, "startup_s": startup, "report_s_fixed": 1.0, "report_s_per_input": 0.04,
        "thread_speedup": {},
        "units": {"lenet5": {"fp32-contiguous": variant(*lenet, sizes)},
                  "resnet18": {"fp32-contiguous": variant(*resnet, {**sizes, "train": 200})}},
        "attacks": {"lenet5": {"autoattack": {
            # in units of G: APGD ~3 G per step, APGD-T/FAB-T 9 targets, Square a forward
            "units": {"apgd_ce": 3 * lenet[2], "apgd_t": 27 * lenet[2], "fab_t": 80 * lenet[2],
                      "square": 1.5 * lenet[1]},
            "survival": {"standard": {"clean": 0.95, "apgd_ce": 0.01, "apgd_t": 0.005, "fab_t": 0.005},
                         "adversarial": {"clean": 0.9, "apgd_ce": 0.5, "apgd_t": 0.4, "fab_t": 0.4}}}}},
    }


def calibration_or_reference(calibration: dict | None) -> dict:
    """``calibration``, else the shipped reference one, else the built-in CPU constants: what
    a compiled plan is priced with.  No machine detection, no environment: the same answer on
    every machine."""
    if calibration is not None:
        return calibration
    return reference_calibration() or _builtin("cpu")


def for_this_machine(requested_device: str = "auto") -> dict:
    """The calibration that prices jobs asking for ``requested_device`` on this machine
    (`clmrepro plan` without ``--calibration``): $CLMREPRO_CALIBRATION, the shipped one that
    matches, else the built-in constants.  Never used by a compile."""
    return (machine_calibration(requested_device)
            or _builtin("cuda" if requested_device == "cuda" else "cpu"))


def describe(calibration: dict) -> str:
    """One line: which calibration, measured where and when."""
    machine = calibration["machine"]
    source = str(calibration.get("source", "in memory"))
    if os.path.isabs(source):
        try:
            source = os.path.relpath(source)
        except ValueError:  # another drive (Windows)
            pass
    text = (f"calibration {calibration['name']} ({source}: "
            f"{machine['device']} {machine.get('device_name', '')}, "
            f"{calibration['threads']} thread(s), {calibration.get('created', 'no date')[:10]})")
    note = calibration.get("note", "")
    if "provisional" in note.lower():
        text += "; provisional"
    return text


class _Units:
    """The unit costs that apply to one job: architecture, variant, device and threads."""

    def __init__(self, cal: dict, job: dict):
        params = job["params"]
        self.cal = cal
        self.arch = priced_as(params)  # your own architecture: as LeNet5/ResNet18
        execution = {**AUTHORS_EXECUTION, "population": "auto", **(params.get("execution") or {})}
        self.device = "cpu" if job.get("device") == "cpu" else cal["machine"]["device"]
        population = execution["population"]
        self.batched = population == "batched" or (population == "auto" and self.device == "cuda")
        self.clm_lockstep = execution["clm_schedule"] == "lockstep"
        measured = cal["units"].get(self.arch) or _builtin(self.device)["units"][self.arch]
        self.units = self._variant(measured, execution["precision"], execution["memory_format"])
        base = measured.get("fp32-contiguous", self.units)
        # attacks were timed on fp32 contiguous models: scale them with the variant's gradient
        self.variant_scale = self.units["grad"] / base["grad"]
        self.thread_scale = self._thread_scale(int(job.get("threads", 1)))
        reference = cal["units"].get("lenet5", {}).get("fp32-contiguous")
        self.grad_vs_lenet = base["grad"] / reference["grad"] if reference else 1.0
        self.forward_vs_lenet = (self._forward_of(base, 100) / self._forward_of(reference, 100)
                                 if reference else 1.0)

    @staticmethod
    def _variant(measured: dict, precision: str, memory_format: str) -> dict:
        for key in (f"{precision}-{memory_format}", f"{precision}-contiguous",
                    f"fp32-{memory_format}", "fp32-contiguous"):
            if key in measured:
                return measured[key]
        return next(iter(measured.values()))

    def _thread_scale(self, threads: int) -> float:
        if self.cal["machine"]["device"] != "cpu":
            return 1.0
        table = self.cal.get("thread_speedup", {}).get(self.arch) or {}
        # more threads are never priced slower: a ratio below 1 was read on a busy machine
        curve = sorted((int(t), max(1.0, float(s))) for t, s in {"1": 1.0, **table}.items())

        def speed(t: int) -> float:
            below = [(k, s) for k, s in curve if k <= t]
            above = [(k, s) for k, s in curve if k > t]
            (k0, s0) = below[-1] if below else curve[0]
            if not above or k0 == t:
                return s0
            k1, s1 = above[0]
            return s0 + (s1 - s0) * (t - k0) / (k1 - k0)

        return speed(int(self.cal.get("threads", 1))) / speed(max(threads, 1))

    @staticmethod
    def _forward_of(units: dict, batch_size: int) -> float:
        table = {int(b): s for b, s in units["forward"].items()}
        nearest = min(table, key=lambda b: abs(math.log(b / max(batch_size, 1))))
        return table[nearest]

    def _batched(self, key: str, fallback: float) -> float:
        batched = self.units.get("batched") or {}
        return batched.get(key) or fallback

    # --- unit costs, seconds per image and submodel, at the job's threads ---------------
    def train(self, batched: bool) -> float:
        value = self._batched("train", self.units["train"]) if batched else self.units["train"]
        return value * self.thread_scale

    def forward(self, batch_size: int, batched: bool) -> float:
        one = self._forward_of(self.units, batch_size)
        return (self._batched("forward_all", one) if batched else one) * self.thread_scale

    def grad(self, mode: str | None = None) -> float:
        """mode None: one model; "each" / "all": through the StackedPopulation."""
        one = self.units["grad"]
        value = self._batched(f"grad_{mode}", one) if mode else one
        return value * self.thread_scale

    def attack_step(self, kind: str) -> float:
        record = self._attack_record("step")
        if record and kind in record:
            ratio = 1.0 if self.cal["attacks"].get(self.arch, {}).get("step") else self.grad_vs_lenet
            return record[kind] * ratio * self.variant_scale * self.thread_scale
        return self.grad() * (1.5 if kind == "fgsm" else 1.0)

    def dispatch(self, n: int) -> float:
        """One input gradient through RandomDispatch of n submodels, per image."""
        record = self._attack_record("dispatch")
        if not record:
            return self.grad() * 1.5
        sizes = sorted(int(k) for k in record)
        own = bool(self.cal["attacks"].get(self.arch, {}).get("dispatch"))
        ratio = 1.0 if own else self.grad_vs_lenet
        if n <= sizes[0] or len(sizes) == 1:
            value = record[str(sizes[0])] * (n / sizes[0] if n > sizes[0] else 1.0) ** 0.5
        else:
            lo = max(s for s in sizes if s <= n)
            hi = min([s for s in sizes if s >= n] or [sizes[-1]])
            a, b = record[str(lo)], record[str(hi)]
            value = a if hi == lo else a + (b - a) * (n - lo) / (hi - lo)
        return value * ratio * self.variant_scale * self.thread_scale

    def autoattack(self) -> tuple[dict, dict]:
        """(seconds per image-step of each component at this architecture, survival)."""
        record = self._attack_record("autoattack") or _builtin(self.device)["attacks"]["lenet5"]["autoattack"]
        own = bool(self.cal["attacks"].get(self.arch, {}).get("autoattack"))
        grad_ratio = 1.0 if own else self.grad_vs_lenet
        forward_ratio = 1.0 if own else self.forward_vs_lenet
        units = {name: value * (forward_ratio if name == "square" else grad_ratio)
                 * self.variant_scale * self.thread_scale
                 for name, value in record["units"].items()}
        return units, record["survival"]

    def _attack_record(self, key: str):
        """This architecture's measured record, else LeNet5's (scaled by the callers)."""
        attacks = self.cal.get("attacks", {})
        return (attacks.get(self.arch, {}).get(key) or attacks.get("lenet5", {}).get(key))


# --- stages --------------------------------------------------------------------------

def _train_seconds(job: dict, u: _Units) -> float:
    """The regime's own price (clmrepro.kinds.regimes: Alg. 1 for the paper's regimes, the
    joint schedule's for the baselines) in this calibration's unit costs."""
    p = job["params"]
    return regimes.get(p["population"]["regime"]).price(p, u)


def _adversarially_trained(job: dict) -> bool:
    """Whether the population was PGD-trained (it picks the measured survival rates)."""
    kind = job["params"]["population"].get("regime")
    return kind is not None and regimes.get(kind).ADVERSARIAL


def _craft_one(job: dict, u: _Units, attack: dict) -> float:
    """Seconds per image crafted on one submodel (each kind prices itself:
    clmrepro.kinds.attacks)."""
    return attack_kinds.get(attack["kind"]).seconds_one(job, u, attack["params"])


def _craft_seconds(job: dict, u: _Units, threat: str, images: int) -> float:
    n = int(job["params"]["population"]["size"])
    attack = job["params"]["attack"]
    kind, params = attack_kinds.get(attack["kind"]), attack["params"]
    if threat == "paper":
        return images * _craft_one(job, u, attack)
    if threat == "transfer":
        # batched kinds: sign steps are per element, so block k's attack is exactly
        # submodel k's own, and a step is one gradient through the stacked population
        if u.batched and kind.BATCHED:
            return images * n * kind.gradient_steps(params) * u.grad("each")
        return images * n * _craft_one(job, u, attack)
    # adaptive (core.attacks.adaptive): exact expected loss, EOT on dispatch, AutoAttack rand
    return kind.seconds_adaptive(job, u, params, n, images)


def _score_seconds(job: dict, u: _Units, threat: str, images: int) -> float:
    p = job["params"]
    n = int(p["population"]["size"])
    sets = n if threat == "transfer" else 1
    return sets * n * images * u.forward(int(p.get("batch_size", 100)), u.batched)


def samples_of(job: dict) -> dict[str, int]:
    """Images per threat model (``plan.samples.images_per_threat``: the rule the steps use)."""
    return {t: int(n) for t, n in images_per_threat(job["params"]).items()}


def _attack_seconds(job: dict, u: _Units) -> float:
    scores = "scores" in job["outputs"]  # the fused layout crafts and scores in one job
    total = 0.0
    samples = samples_of(job)
    for threat, images in samples.items():
        total += _craft_seconds(job, u, threat, images)
        if scores:
            total += _score_seconds(job, u, threat, images)
    rules = [r for r in job["params"].get("inference") or [] if r != "random"]
    if rules and "adaptive" in samples:
        # the deterministic rules' adaptive set: the attack on the averaged population, one
        # model of n submodels (n gradients per step), then each rule scores it and the
        # paper protocol's set (n forwards per image each)
        n, images = int(job["params"]["population"]["size"]), samples["adaptive"]
        total += images * n * _craft_one(job, u, job["params"]["attack"])
        bs = int(job["params"].get("batch_size", 100))
        total += len(rules) * (images + samples.get("paper", 0)) * n * u.forward(bs, False)
    return total


def _evaluate_seconds(job: dict, u: _Units) -> float:
    p = job["params"]
    if p.get("attack") is None:
        n = int(p["population"]["size"])
        saliency = int(p.get("saliency_samples") or 0) if n > 1 else 0
        return (_score_seconds(job, u, "paper", int(p["n_samples"]))
                + n * saliency * u.grad("all" if u.batched else None))
    return sum(_score_seconds(job, u, threat, images) for threat, images in samples_of(job).items())


def _sanity_seconds(job: dict, u: _Units) -> float:
    """The checks of core.attacks.sanity on N images, per threat model, with m the submodels
    attacked (1 on the paper protocol, n adaptive): the traced PGD (a gradient and a forward
    per step and submodel), each check's own work at its price (its module in
    clmrepro.kinds.checks: twice the steps and the restarts, the eps = 1 PGD, Square's
    queries, the noise draws, the zero-gradient pass, ...), and scoring every set on all n."""
    p = job["params"]
    s = p["sanity"]
    n = int(p["population"]["size"])
    images = int(s["samples"])
    grad = u.grad("all" if u.batched else None)
    forward = u.forward(int(p.get("batch_size", 100)), u.batched)
    steps = int(s["pgd"]["steps"])
    adversarial = _adversarially_trained(job)
    total = 0.0
    for threat in s["threat_models"]:
        m = 1 if threat == "paper" else n
        step = m * (grad + forward)
        costs = Costs(m=m, n=n, steps=steps, step=step, grad=grad, forward=forward,
                      adversarial=adversarial)
        work, sets = steps * step, 1
        for check in check_kinds.jobs(s["checks"]):
            more, scored = check.price(s, threat, costs)
            work += more
            sets += scored
        total += images * (work + sets * n * forward)
    return total


def _report_seconds(job: dict, cal: dict) -> float:
    """A fixed part (paper tables, matplotlib, templates) and a part per input file: most of
    the per-input work is a figure per scores file.  The replicates of one file
    (``.../r0/...``, ``.../r1/...``) share their figures and table cells, so they count once
    (mnist5k, K = 3: counting every file planned the report at 1.7× its measured time)."""
    inputs = job["inputs"]
    count = sum(len({paths.without_replicate(path) for path in inputs.get(k) or []})
                for k in ("scores", "records", "analyses"))
    return (float(cal.get("report_s_fixed", 0.0))
            + count * float(cal.get("report_s_per_input", 0.07)))


def _data_seconds(job: dict, cal: dict) -> float:
    """Checking and decoding the sources (``DATA_DECODE_S``; the download itself depends on
    the network and is not estimated), plus the start-up of a training job (the same imports:
    torch, torchvision)."""
    name = job["params"]["dataset"]["name"]
    return float(cal["startup_s"]["train"]) + DATA_DECODE_S.get(name, DATA_DECODE_S["cifar10"])


def estimate_seconds(job: dict, calibration: dict) -> float:
    """Wall seconds of one job (start-up included) on the machine ``calibration`` measured."""
    cal = calibration
    stage = job["stage"]
    if stage == "data":
        return _data_seconds(job, cal)
    # a retrain starts as a train job does, the checks as an attack job (same imports)
    started_as = {"retrain": "train", "sanity": "attack"}.get(stage, stage)
    startup = float(cal["startup_s"][started_as])
    if stage == "report":
        return startup + _report_seconds(job, cal)
    u = _Units(cal, job)
    work = {"train": _train_seconds, "retrain": _train_seconds, "attack": _attack_seconds,
            "evaluate": _evaluate_seconds, "sanity": _sanity_seconds}[stage](job, u)
    return startup + work


def authors_settings(job: dict) -> dict:
    """The job as the authors ran it: fp32, contiguous, sequential, every threat model on
    the paper protocol's full N (for `plan --summary`'s comparison)."""
    p = job.get("params", {})
    if "execution" not in p and "samples" not in p:
        return job
    authors = copy.deepcopy(job)
    params = authors["params"]
    if "execution" in params:
        params["execution"] = dict(AUTHORS_EXECUTION)
    if "samples" in params:
        params["samples"] = {t: int(params["n_samples"]) for t in params["samples"]}
    return authors


def runtime_minutes(seconds: float) -> int:
    """A generous limit for schedulers: three times the estimate, at least 10 minutes."""
    return max(10, math.ceil(3 * seconds / 60))


def memory_mb(architecture: str, stage: str) -> int:
    if stage in ("report", "data"):
        return 2000
    return {"lenet5": 2000, "resnet18": 8000}[architecture]
