"""The Baselines section (reporting.baselines): tables, training costs, CLM-vs-X verdicts."""

import pytest

from clmrepro.reporting.baselines import (baseline_tables, clm_vs_baselines, degenerate_losses,
                                          training_costs)
from clmrepro.reporting.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_RUN
from clmrepro.reporting.paper import BASELINE_REGIMES, REGIME_LABELS
from clmrepro.spec.models import BASELINE_KINDS


def record(pop, regime, attack, mra, *, threat="paper", r=0, eps=0.3):
    return {"experiment": "mnist", "dataset": "mnist-5k", "population": pop, "regime": regime,
            "attack": attack, "eps": 0.0 if attack == "benign" else eps, "threat_model": threat,
            "mra": mra, "per_submodel": [mra] * 2, "n_samples": 1000, "replicate": r}


def replicated(pop, regime, attack, values, **kw):
    return [record(pop, regime, attack, v, r=r, **kw) for r, v in enumerate(values)]


def test_reporting_knows_every_baseline_of_the_spec():
    assert set(BASELINE_REGIMES) == set(BASELINE_KINDS)
    assert all(kind in REGIME_LABELS for kind in BASELINE_KINDS)


def test_no_baseline_no_section():
    records = replicated("ulm", "ulm", "pgd", [0.1, 0.2, 0.3]) + \
        replicated("clm", "clm", "pgd", [0.2, 0.3, 0.4])
    assert baseline_tables(records) == [] and clm_vs_baselines(records) == []


def test_one_table_per_threat_model_rows_in_regime_order_cells_over_replicates():
    records = (replicated("adp", "adp", "pgd", [0.30, 0.32, 0.34])
               + replicated("ulm", "ulm", "pgd", [0.10, 0.12, 0.14])
               + replicated("clm", "clm", "pgd", [0.20, 0.22, 0.24])
               + replicated("ulm", "ulm", "benign", [0.98, 0.98, 0.98])
               + replicated("clm", "clm", "pgd", [0.05, 0.06, 0.07], threat="adaptive"))
    tables = baseline_tables(records)
    assert [(t.experiment, t.threat_model) for t in tables] == [("mnist", "paper"),
                                                                 ("mnist", "adaptive")]
    paper = tables[0]
    assert [pop for pop, _, _ in paper.rows] == ["ulm", "clm", "adp"]
    assert paper.columns == [("benign", 0.0), ("pgd", 0.3)]
    cells = {pop: cells for pop, _, cells in paper.rows}
    assert cells["adp"][("pgd", 0.3)].mean == pytest.approx(0.32)
    assert cells["adp"][("pgd", 0.3)].k == 3
    assert not cells["adp"][("benign", 0.0)].run
    assert paper.markdown_rows()[2][2] == "not run"
    assert paper.header() == ["population", "regime", "Benign", "PGD ε 0.3"]
    # the adaptive table lists every population, run or not
    assert [pop for pop, _, _ in tables[1].rows] == ["ulm", "clm", "adp"]


def test_clm_beats_a_baseline_holds_fails_or_is_inconclusive_by_the_paired_interval():
    records = (replicated("clm", "clm", "pgd", [0.30, 0.32, 0.34])
               + replicated("adp", "adp", "pgd", [0.10, 0.12, 0.14])       # clearly below CLM
               + replicated("trs", "trs", "pgd", [0.50, 0.52, 0.54])       # clearly above
               + replicated("gal", "gal", "pgd", [0.20, 0.42, 0.30])       # noisy: unclear
               + replicated("clm", "clm", "fgsm", [0.5, 0.5, 0.5]))        # no baseline ran it
    verdicts = {(v.baseline, v.label): v for v in clm_vs_baselines(records)}
    assert verdicts[("adp", "PGD ε 0.3, paper")].outcome == HOLDS
    assert verdicts[("adp", "PGD ε 0.3, paper")].interval.mean == pytest.approx(0.20)
    assert verdicts[("trs", "PGD ε 0.3, paper")].outcome == FAILS
    assert verdicts[("gal", "PGD ε 0.3, paper")].outcome == INCONCLUSIVE
    assert verdicts[("adp", "FGSM ε 0.3, paper")].outcome == NOT_RUN


def test_training_cost_adds_the_population_it_starts_from():
    def training(pop, regime, seconds, r, parent=None):
        return {"experiment": "mnist", "population": pop, "replicate": r,
                "record": {"regime": regime, "wall_seconds": seconds, "from": parent}}
    trainings = [training("ulm", "ulm", 10.0, 0), training("ulm", "ulm", 20.0, 1),
                 training("dverge", "dverge", 100.0, 0, "ulm"),
                 training("dverge", "dverge", 110.0, 1, "ulm"),
                 training("adp", "adp", 30.0, 0)]
    costs = {c.population: c for c in training_costs(trainings)}
    assert costs["ulm"].own_seconds == pytest.approx(15.0)
    assert costs["dverge"].own_seconds == pytest.approx(105.0)
    assert costs["dverge"].total_seconds == pytest.approx(120.0)
    assert costs["adp"].total_seconds == pytest.approx(30.0) and costs["adp"].parent is None


def test_the_report_shows_the_section_only_when_a_baseline_ran(tmp_path, report_tools, rendered):
    records = (replicated("ulm", "ulm", "pgd", [0.10, 0.12, 0.14])
               + replicated("clm", "clm", "pgd", [0.30, 0.32, 0.34])
               + replicated("adp", "adp", "pgd", [0.10, 0.12, 0.14]))
    out = report_tools["build"](tmp_path, records)
    md, html = out["report_md"].read_text(), out["report_html"].read_text()
    section = md.split("## Baselines", 1)[1].split("\n## ", 1)[0]
    assert "| adp          | ADP      | 12.00% [" in section
    assert "| mnist        | adp        | PGD ε 0.3, paper | 32.00% | 12.00%" in section
    assert section.rstrip().endswith("| holds     |")
    assert 'id="baselines"' in html and "baselines-table" in html
    # the fixture report has no baseline population: no section
    assert "## Baselines" not in rendered["md"] and 'id="baselines"' not in rendered["html"]


def sized(records, n):
    return [{**r, "n_submodels": n} for r in records]


def test_a_degenerate_diversity_loss_is_said_per_population():
    """ADP with as many members as classes or more (issue 26): the regime module's warning,
    the one `clmrepro validate` prints; 9 members on 10 classes, and other regimes, say
    nothing."""
    records = (sized(replicated("clm", "clm", "pgd", [0.30, 0.32, 0.34]), 10)
               + sized(replicated("adp10", "adp", "pgd", [0.10, 0.12, 0.14]), 10)
               + sized(replicated("adp9", "adp", "pgd", [0.10, 0.12, 0.14]), 9))
    (found,) = degenerate_losses(records)
    assert (found.experiment, found.population, found.regime) == ("mnist", "adp10", "adp")
    assert found.text().startswith("mnist/adp10: adp with 10 members on 10 classes: the log-det")
    assert "use size ≤ 9" in found.text()
    assert degenerate_losses(records[:3] + records[6:]) == []


def test_the_report_says_it_in_the_baselines_section(tmp_path, report_tools):
    records = (sized(replicated("clm", "clm", "pgd", [0.30, 0.32, 0.34]), 10)
               + sized(replicated("adp", "adp", "pgd", [0.10, 0.12, 0.14]), 10))
    out = report_tools["build"](tmp_path, records)
    md, html = out["report_md"].read_text(), out["report_html"].read_text()
    section = md.split("## Baselines", 1)[1].split("\n## ", 1)[0]
    assert "A diversity term that is degenerate for this spec" in section
    assert "\n- mnist/adp: adp with 10 members on 10 classes: the log-det diversity term is" \
        " degenerate" in section
    html_section = html.split('id="baselines"', 1)[1].split("</section>", 1)[0]
    assert '<ul class="baselines-degenerate">' in html_section
    assert "<li>mnist/adp: adp with 10 members on 10 classes" in html_section


def test_the_cost_figure_labels_its_seconds_as_plain_numbers_without_minor_labels():
    from matplotlib.figure import Figure

    from clmrepro.reporting.figures import seconds_axis

    ax = Figure().subplots()
    ax.plot([30.0, 70.0, 110.0, 740.0], [2.0, 2.2, 1.9, 3.1], "o")  # the run of record's span
    seconds_axis(ax)
    ax.figure.canvas.draw()
    low, high = ax.get_xlim()
    major = [t.get_text() for t, v in zip(ax.get_xticklabels(), ax.get_xticks()) if low <= v <= high]
    minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    assert major == ["50", "100", "200", "500"]
    assert minor == []
