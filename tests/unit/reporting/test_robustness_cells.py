"""A robustness cell shows every measure that flags: the convergence check's incomplete-trace
share beside its doubled-steps move (issue 26), in Markdown and HTML."""

from __future__ import annotations

from clmrepro.kinds.checks.base import Measure
from clmrepro.reporting.robustness import RobustnessSection, cell_markdown, evidence_text
from clmrepro.reporting.sanity import FLAG, PASS, CheckResult


def convergence(trace_flags: bool, verdict: str = FLAG) -> CheckResult:
    measures = (Measure("PGD with twice the steps − PGD", "difference", -0.05, flags=True),
                Measure("PGD with 5 restarts − PGD", "difference", -0.002),
                Measure("images the attack did not break with an incomplete loss trace",
                        "count", 30, of=30, flags=trace_flags))
    return CheckResult("convergence", "convergence", "mnist", "clm", "clm", "adaptive",
                       verdict, "rule", "source", measures)


def test_a_second_flagging_measure_is_shown_beside_the_key_one():
    text = cell_markdown(convergence(trace_flags=True))
    assert text == ("**flag**: PGD with twice the steps − PGD: -5.00 points; also: images the "
                    "attack did not break with an incomplete loss trace: 30 of 30 (100.00%)")


def test_a_measure_that_does_not_flag_stays_out_of_the_cell():
    assert evidence_text(convergence(trace_flags=False)) == (
        "PGD with twice the steps − PGD: -5.00 points")


def test_a_passing_check_shows_its_key_measure_only():
    result = CheckResult("convergence", "convergence", "mnist", "clm", "clm", "adaptive",
                         PASS, "rule", "source",
                         (Measure("a", "difference", 0.0), Measure("b", "difference", 0.0,
                                                                     key=True)))
    assert cell_markdown(result) == "pass: b: +0.00 points"
    assert RobustnessSection.evidence_text(result) == "b: +0.00 points"
