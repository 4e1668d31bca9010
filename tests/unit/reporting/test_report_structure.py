"""The report's structure: every HTML anchor lands on its own content, the claims are
evaluated once per report build, and the robustness section is assembled once
(reporting.robustness) and read by metrics.json and both reports."""

from __future__ import annotations

import json
import sys
from html.parser import HTMLParser

import pytest

# each section's id and the heading it wraps (report.html.j2)
SECTIONS = {
    "departures": "This run departs from the paper's settings",
    "precision": "Precision chosen for this run",
    "summary": "Did it reproduce?",
    "tables": "Tables 1–5: reproduced vs paper",
    "baselines": "Baselines: counter-linking beside the field's other diversity methods",
    "inference": "Inference rules: random dispatch, averaging, voting",
    "sanity": "Is the robustness real?",
    "claims": "The paper's claims",
    "threat-models": "Threat models: the paper's protocol, transfer, adaptive",
    "other-results": "Results the paper prints no number for",
    "figures": "Figures",
    "provenance": "Provenance",
}


class Sections(HTMLParser):
    """The <section> elements with their id and the <h2> headings inside each; every id and
    every in-page link (href="#...")."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections: list[dict] = []
        self.open: list[dict] = []
        self.outside: list[str] = []      # h2 headings outside every section
        self.ids: list[str] = []
        self.links: list[str] = []
        self.heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        if (attrs.get("href") or "").startswith("#"):
            self.links.append(attrs["href"][1:])
        if tag == "section":
            section = {"id": attrs.get("id"), "headings": [], "nested": bool(self.open),
                       "h2_id": []}
            self.sections.append(section)
            self.open.append(section)
        elif tag == "h2":
            self.heading = []
            if attrs.get("id") and self.open:
                self.open[-1]["h2_id"].append(attrs["id"])

    def handle_endtag(self, tag):
        if tag == "section":
            self.open.pop()
        elif tag == "h2":
            text = "".join(self.heading).strip()
            (self.open[-1]["headings"] if self.open else self.outside).append(text)
            self.heading = None

    def handle_data(self, data):
        if self.heading is not None:
            self.heading.append(data)


def sections_of(html: str) -> Sections:
    parser = Sections()
    parser.feed(html)
    parser.close()
    return parser


def every_section_record(pop, regime, r, mra):
    """A paper-protocol PGD record of one replicate, with its averaging / voting twins and an
    adaptive one: baselines, inference rules and threat models all have something to show."""
    base = {"experiment": "mnist", "dataset": "mnist-5k", "population": pop, "regime": regime,
            "attack": "pgd", "eps": 0.3, "threat_model": "paper", "mra": mra,
            "per_submodel": [mra] * 2, "n_samples": 1000, "replicate": r}
    return [base, {**base, "attack": "benign", "eps": 0.0, "mra": 0.99},
            {**base, "mra": mra + 0.05, "inference": "average"},
            {**base, "mra": mra + 0.07, "inference": "vote"},
            {**base, "mra": mra - 0.02, "threat_model": "adaptive"}]


@pytest.fixture(scope="module")
def constructed(tmp_path_factory, report_tools):
    """A constructed report with a Baselines and an Inference section (the fixture run has
    neither) and a robustness section with no check file."""
    records = []
    for r, values in enumerate([(0.10, 0.30, 0.12), (0.12, 0.32, 0.11), (0.14, 0.34, 0.15)]):
        for (pop, regime), mra in zip((("ulm", "ulm"), ("clm", "clm"), ("adp", "adp")), values):
            records += every_section_record(pop, regime, r, mra)
    out = report_tools["build"](tmp_path_factory.mktemp("constructed"), records, sanity=[])
    return out["report_html"].read_text()


@pytest.mark.parametrize("which", ["fixture", "constructed"])
def test_every_section_id_wraps_the_heading_it_names(which, rendered, constructed):
    html = rendered["html"] if which == "fixture" else constructed
    parsed = sections_of(html)
    found = [s["id"] for s in parsed.sections]
    assert parsed.outside == []
    for section in parsed.sections:
        assert not section["nested"], section["id"]
        assert section["id"] in SECTIONS, section
        # one h2 per section, the one its id names; no heading carries another anchor
        assert section["headings"] == [SECTIONS[section["id"]]], section
        assert section["h2_id"] == [], section
    # sections appear in the report's order, each once
    assert found == [s for s in SECTIONS if s in found]
    expected = {"summary", "tables", "sanity", "claims", "threat-models", "figures",
                "provenance"}
    expected |= ({"departures"} if which == "fixture" else {"baselines", "inference"})
    assert expected <= set(found)
    # anchors are unique and every in-page link lands on one
    assert len(parsed.ids) == len(set(parsed.ids))
    assert set(parsed.links) <= set(parsed.ids)


def test_the_old_structure_fails_the_section_test():
    """The test above catches the bug it was written for: Baselines and Inference inside the
    section whose id is "sanity"."""
    html = ('<section id="sanity"><h2 id="baselines">' + SECTIONS["baselines"] + "</h2>"
            '<h2 id="inference">' + SECTIONS["inference"] + "</h2><h2>"
            + SECTIONS["sanity"] + "</h2></section>")
    (section,) = sections_of(html).sections
    assert section["headings"] != [SECTIONS["sanity"]]


def _counting(monkeypatch, module_name: str, function: str) -> list:
    """Count calls of ``module_name.function`` wherever clmrepro holds a reference to it."""
    module = sys.modules[module_name]
    original = getattr(module, function)
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    for name, other in list(sys.modules.items()):
        if name.startswith("clmrepro") and getattr(other, function, None) is original:
            monkeypatch.setattr(other, function, counted)
    return calls


def test_claims_and_checks_run_once_per_report_build(tmp_path, monkeypatch, report_tools,
                                                      rendered):
    import clmrepro.reporting.build  # noqa: F401  (every reporting module loaded)

    claims = _counting(monkeypatch, "clmrepro.reporting.claims", "evaluate_claims")
    checks = _counting(monkeypatch, "clmrepro.reporting.sanity", "run_checks")
    job = report_tools["make_job"](tmp_path)
    report_tools["run_in"](tmp_path, job)
    assert (len(claims), len(checks)) == (1, 1)
    # the same report as the session's (rendered without counting)
    out = {key: tmp_path / path for key, path in job["outputs"].items()}
    assert out["report_md"].read_text() == rendered["md"]
    assert out["report_html"].read_text() == rendered["html"]
    assert json.loads(out["metrics"].read_text()) == rendered["metrics"]


def test_metrics_and_both_reports_read_one_robustness_section(rendered):
    """The counts metrics.json records are the ones both reports print."""
    summary = rendered["metrics"]["summary"]
    total = len(rendered["metrics"]["sanity"])
    line = (f"{summary['checks_flagged']} of {total} checks flag, {summary['checks_passed']} "
            f"pass, {summary['checks_not_run']} not run.")
    assert line in rendered["md"].split("## Is the robustness real?")[1]
    html = rendered["html"].split('<section id="sanity">')[1].split("</section>")[0]
    assert f'<p class="sanity-summary">{line}</p>' in html
