"""The emitted plan as Snakemake sees it: `snakemake -n` on the smoke DAG and on a replicated
GPU spec, and the `gpu` resource counting slots (config slots_per_gpu, issue 10)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from clmrepro.compiled import snakemake_plan
from clmrepro.emit import emit_all
from clmrepro.plan.compile import compile_spec
from clmrepro.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[3]

MIXED = """
name: mixed
device: auto
experiments:
  - id: mnist
    dataset: {name: mnist-5k, n_train: 600, n_test: 200}
    architecture: lenet5
    replicates: 2
    populations:
      - {id: ulm, size: 2, regime: {kind: ulm}}
      - {id: clm, size: 2, regime: {kind: clm, from: ulm}}
    evaluation: {n_samples: 40, attacks: [{kind: fgsm, eps: [0.3]}]}
  - id: cifar10
    dataset: {name: fake-cifar10}
    architecture: resnet18
    populations: [{id: ulm, size: 2, regime: {kind: ulm}}]
    evaluation: {n_samples: 40, attacks: [{kind: fgsm, eps: ['8/255']}]}
"""


def workspace(tmp_path: Path, plan, spec_text: str) -> Path:
    """A repository copy with just what Snakemake reads: Snakefile, rules, profiles, plan."""
    shutil.copy(ROOT / "Snakefile", tmp_path / "Snakefile")
    shutil.copytree(ROOT / "workflow/rules", tmp_path / "workflow/rules")
    shutil.copytree(ROOT / "workflow/profiles", tmp_path / "workflow/profiles")
    (tmp_path / "specs").mkdir()
    shutil.copy(ROOT / "specs/paper_tables.yaml", tmp_path / "specs/paper_tables.yaml")
    (tmp_path / plan.spec_path).write_text(spec_text)
    emit_all(plan, tmp_path)
    return tmp_path


def dry_run(where: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", *args], cwd=where,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def jobs_of(output: str) -> dict[str, int]:
    table = re.search(r"Job stats:\n(.*?)\n\n", output, re.S).group(1)
    return {line.split()[0]: int(line.split()[1]) for line in table.splitlines()[2:]}


def test_smoke_dag_dry_runs(tmp_path):
    plan = compile_spec(load_spec(ROOT / "specs/smoke.yaml"), "specs/smoke.yaml")
    output = dry_run(workspace(tmp_path, plan, (ROOT / "specs/smoke.yaml").read_text()))
    counts = jobs_of(output)
    assert counts["total"] == len(plan.jobs) + 1          # + rule all
    assert counts["job_smoke__attack_mnist_clm_pgd_0_3"] == 1
    assert "job_smoke__evaluate_mnist_clm_pgd_0_3" not in counts
    # the shell command is dvc.yaml's, told the slot count
    stages = yaml.safe_load((tmp_path / "workflow/compiled/smoke/dvc.yaml").read_text())["stages"]
    cmd = stages["train-mnist-ulm"]["cmd"]
    assert f"CLMREPRO_SLOTS_PER_GPU=1 {cmd} >" in output


def test_replicated_dag_and_gpu_slots(tmp_path):
    plan = compile_spec(parse_spec(MIXED), "specs/mixed.yaml")
    where = workspace(tmp_path, plan, MIXED)
    output = dry_run(where, "--config", "slots_per_gpu=4")
    counts = jobs_of(output)
    assert counts["total"] == len(plan.jobs) + 1
    assert {"job_mixed__train_mnist_ulm_r0", "job_mixed__retrain_mnist_clm_r1",
            "job_mixed__train_cifar10_ulm"} <= set(counts)
    blocks = {m.group(1): m.group(2) for m in
              re.finditer(r"rule (job_\w+):\n(.*?)(?=\n\n|\Z)", output, re.S)}
    # a LeNet5 job takes one of the 4 slots, a ResNet18 job all of them, the report none
    assert re.search(r"\bgpu=1\b", blocks["job_mixed__train_mnist_ulm_r1"])
    assert re.search(r"\bgpu=4\b", blocks["job_mixed__train_cifar10_ulm"])
    assert re.search(r"\bgpu=0\b", blocks["job_mixed__report"])
    assert "CLMREPRO_SLOTS_PER_GPU=4 python -m clmrepro.steps.gpu_slot --whole-gpu --" in output
    # without a setting: 1 slot per GPU, every GPU job counts 1
    output = dry_run(where)
    assert not re.search(r"\bgpu=4\b", output) and "CLMREPRO_SLOTS_PER_GPU=1 " in output
    # the setting in the local profile, which must be named (not found by itself)
    profile = where / "workflow/profiles/default/config.yaml"
    profile.write_text(profile.read_text().replace("slots_per_gpu=1", "slots_per_gpu=3"))
    assert "CLMREPRO_SLOTS_PER_GPU=1 " in dry_run(where)
    output = dry_run(where, "--workflow-profile", "workflow/profiles/default")
    assert "CLMREPRO_SLOTS_PER_GPU=3 " in output and re.search(r"\bgpu=3\b", output)


def dag_edges(where: Path) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """`snakemake --dag`: node labels by id, and the edges (producer, consumer) by label."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "snakemake", "--dag", "--cores", "1"],
                            cwd=where, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    labels = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', result.stdout, re.M))
    edges = {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", result.stdout, re.M)}
    return labels, edges


LOCAL_RULES = """
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), snakefile=Path("Snakefile"),
                            workdir=Path("."))._workflow
    print(" ".join(sorted(workflow._localrules)))
"""


def local_rules(where: Path) -> list[str]:
    """The rules the Snakefile declares local (`localrule: True` or `localrules:`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", LOCAL_RULES], cwd=where, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


def test_paper_dag_has_one_local_data_job_per_dataset_upstream_of_its_readers(tmp_path):
    """Issue 17: mnist and cifar10 are fetched by one local job each, before any job reads them."""
    text = (ROOT / "specs/paper.yaml").read_text()
    plan = compile_spec(parse_spec(text), "specs/paper.yaml")
    where = workspace(tmp_path, plan, text)
    output = dry_run(where)
    counts = jobs_of(output)
    assert {name: n for name, n in counts.items() if name.startswith("data_")} == {
        "data_mnist": 1, "data_cifar10": 1}
    assert counts["total"] == len(plan.jobs) + 1 == 136   # with the one-model rows
    assert re.search(r"^rule data_mnist:\n\s+input: workflow/compiled/_data/mnist/job.json\n"
                     r"\s+output: data/prepared/mnist.pt, data/prepared/mnist.manifest.json",
                     output, re.M)
    # local rules: on a cluster they run on the submit host, the one with network (Snakemake 9
    # no longer prints "localrule" in a dry run, so ask its API)
    assert local_rules(where) == ["data_cifar10", "data_mnist"]
    labels, edges = dag_edges(where)
    readers = {"mnist": set(), "cifar10": set()}
    for job in snakemake_plan({"paper": plan}).jobs:
        if job.stage in ("train", "retrain", "attack", "evaluate", "sanity"):
            readers[job.job["params"]["dataset"]["name"]].add(job.rule_name)
    # per dataset: 4 trains (with the one-model rows), 2 retrains, 48 attacks (ARC included),
    # 6 evaluates, 6 sanity
    assert len(readers["mnist"]) == len(readers["cifar10"]) == 66
    assert "job_paper__retrain_cifar10_clm" in readers["cifar10"]
    for name, rules in readers.items():
        fed = {consumer for producer, consumer in edges if producer == f"data_{name}"}
        # every job that reads the dataset, the report (its manifest), the target; no other
        assert fed == rules | {"job_paper__report", "all"}, name
        assert not {producer for producer, consumer in edges if consumer == f"data_{name}"}


def test_a_rewritten_prepared_dataset_leaves_every_spec_current(tmp_path):
    """`dvc commit`/`dvc pull` rewrite the shared prepared file in place; compared by time, one
    spec's run would then put every other spec reading the dataset out of date."""
    text = (ROOT / "specs/smoke.yaml").read_text()
    plan = compile_spec(parse_spec(text), "specs/smoke.yaml")
    where = workspace(tmp_path, plan, text)
    stamp = 1_000_000_000
    for job in plan.jobs:            # every output present, written in DAG order
        stamp += 10
        for path in job.output_paths():
            target = where / path
            if job.directories and path.endswith("figures"):
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"x")
            os.utime(target, (stamp, stamp))
    for source in [*(where / "workflow/compiled").rglob("*.json"), *(where / "specs").iterdir()]:
        os.utime(source, (1_000_000_000, 1_000_000_000))   # job files and specs: older
    assert "Nothing to be done" in dry_run(where)
    prepared = where / "data/prepared/mnist-5k.pt"
    os.utime(prepared, (stamp + 100, stamp + 100))
    os.utime(prepared.with_name("mnist-5k.manifest.json"), (stamp + 100, stamp + 100))
    assert "Nothing to be done" in dry_run(where)
    # any other input still counts by time: a newer population reruns what reads it
    population = where / "results/smoke/mnist/ulm/population.pt"
    os.utime(population, (stamp + 100, stamp + 100))
    counts = jobs_of(dry_run(where))
    assert counts["job_smoke__retrain_mnist_clm"] == 1 and "data_mnist_5k" not in counts


# Every rule's named inputs as the Snakefile declares them: rule name, input name, file, and
# whether Snakemake compares the file as `ancient`.
RULE_INPUTS = """
import json
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.io import is_flagged
from snakemake.settings.types import OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), snakefile=Path("Snakefile"),
                            workdir=Path("."))._workflow
    found = []
    for rule in workflow.rules:
        for name, (start, end) in rule.input._names.items():
            for item in rule.input[start:start + 1 if end is None else end]:
                found.append([rule.name, name, str(item), bool(is_flagged(item, "ancient"))])
    print(json.dumps(found))
"""

# The smallest spec with every job stage: data, train, retrain, attack, evaluate, sanity, report.
EVERY_STAGE = """
name: stages
device: cpu
experiments:
  - id: mnist
    dataset: {name: mnist-5k, n_train: 600, n_test: 200}
    architecture: lenet5
    populations:
      - {id: ulm, size: 2, regime: {kind: ulm}}
      - {id: clm, size: 2, regime: {kind: clm, from: ulm}}
    evaluation:
      n_samples: 40
      attacks: [{kind: fgsm, eps: [0.3]}]
      sanity: {samples: 20}
"""


def test_every_job_rule_reads_its_datasets_as_ancient(tmp_path):
    """Issue 25: one rule text for every stage (workflow/rules/jobs.smk).  The prepared datasets
    and their manifests are `ancient` inputs of every job that reads them (a sanity rule once
    declared them plainly), and no other input is."""
    plan = compile_spec(parse_spec(EVERY_STAGE), "specs/stages.yaml")
    where = workspace(tmp_path, plan, EVERY_STAGE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", RULE_INPUTS], cwd=where, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    declared = json.loads(result.stdout.strip().splitlines()[-1])
    stage_of = {job.rule_name: job.stage for job in snakemake_plan({"stages": plan}).jobs}
    assert set(stage_of.values()) == {"data", "train", "retrain", "attack", "evaluate", "sanity",
                                      "report"}
    readers = {}
    for rule, name, path, ancient in declared:
        if rule not in stage_of:
            assert rule == "all" or rule.startswith("spec_"), rule
            continue
        dataset_input = name in ("data", "manifest", "manifests")
        assert ancient == dataset_input, (rule, name, path)
        if dataset_input:
            assert path.startswith("data/prepared/"), (rule, name, path)
            readers.setdefault(stage_of[rule], set()).add(name)
    # every stage after data reads a dataset: its prepared file, or (the report) the manifests
    # (each job that reads the prepared file reads its manifest too: the sha256 it checks)
    both = {"data", "manifest"}
    assert readers == {"train": both, "retrain": both, "attack": both, "evaluate": both,
                       "sanity": both, "report": {"manifests"}}
    assert local_rules(where) == ["data_mnist_5k"]
