"""Critical path first (clmrepro.plan.critical): a job's priority is its estimate plus the
longest chain of estimates that waits on its outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from clmrepro.plan.critical import critical_path_seconds, priorities


@dataclass
class Job:
    id: str
    estimate_s: float
    reads: list[str] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)

    def input_paths(self):
        return list(self.reads)


def test_a_long_training_chain_outranks_a_short_attack():
    # train-adv (1000 s) -> retrain-adv (1000 s) -> attack (60 s); train (30 s) -> attack (300 s)
    jobs = [Job("train-adv", 1000, [], {"population": "adv.pt"}),
            Job("retrain-adv", 1000, ["adv.pt"], {"population": "clm-adv.pt"}),
            Job("attack-clm-adv", 60, ["clm-adv.pt"], {"scores": ["a.json", "b.json"]}),
            Job("train", 30, [], {"population": "ulm.pt"}),
            Job("attack-ulm", 300, ["ulm.pt"], {"scores": "c.json"}),
            Job("report", 5, ["a.json", "c.json"], {"report": "r.md"})]
    chain = critical_path_seconds(jobs)
    assert chain == {"report": 5, "attack-clm-adv": 65, "retrain-adv": 1065,
                     "train-adv": 2065, "attack-ulm": 305, "train": 335}
    ranked = priorities(jobs)
    assert ranked["train-adv"] > ranked["retrain-adv"] > ranked["train"] > ranked["attack-ulm"]


def test_a_cycle_is_refused():
    jobs = [Job("a", 1, ["y"], {"o": "x"}), Job("b", 1, ["x"], {"o": "y"})]
    with pytest.raises(ValueError, match="cycle"):
        critical_path_seconds(jobs)


def test_the_report_of_record_starts_the_adversarial_training_first():
    from pathlib import Path

    from clmrepro.plan.compile import compile_spec
    from clmrepro.spec import load_spec
    root = Path(__file__).resolve().parents[3]
    plan = compile_spec(load_spec(root / "specs/mnist5k.yaml"), "specs/mnist5k.yaml")
    ranked = priorities(plan.jobs)
    assert max(ranked, key=ranked.get) == "data-mnist-5k"   # everything reads the data
    trained = {job_id: rank for job_id, rank in ranked.items() if job_id != "data-mnist-5k"}
    first = max(trained, key=trained.get)
    assert first.startswith("train-mnist-ulm-adv"), first
    assert ranked["train-mnist-ulm-adv-r0"] > ranked["retrain-mnist-clm-adv-r0"]
