"""The rendered fixture report: numbers equal metrics.json, HTML well formed, text escaped."""

from __future__ import annotations

import base64
import re
import statistics
from html.parser import HTMLParser

import pytest

from clmrepro.reporting.paper import ATTACK_LABELS, REGIME_LABELS
from clmrepro.reporting.render import write_index

VOID = {"meta", "img", "br", "hr", "link", "input"}
NUMBER = re.compile(r"[-+]?\d+\.\d+")


class Report(HTMLParser):
    """Balanced-tag check plus the text of every table cell, by table id and cell class."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.starts = [], [], []
        self.tables, self.cell, self.images, self.text = {}, None, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.starts.append(tag)
        if tag == "img":
            self.images.append(attrs)
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "table":
            self.table = self.tables.setdefault(attrs.get("id") or f"t{len(self.tables)}", [])
        elif tag == "tr":
            self.table.append([])
        elif tag in ("td", "th"):
            self.cell = [attrs.get("class") or "", ""]
            self.table[-1].append(self.cell)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()
        if tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self.cell is not None:
            self.cell[1] += data


@pytest.fixture(scope="module")
def parsed(rendered):
    parser = Report()
    parser.feed(rendered["html"])
    parser.close()
    return parser


def expected_cells(metrics):
    """(table number, attack label, regime label) -> (reproduced, paper, delta) from the JSON."""
    out = {}
    for r in metrics["records"]:
        if r["paper"] is None:
            continue
        mean = r["mra"]
        sd = statistics.stdev(r["per_submodel"])
        out[(r["attack"], r["regime"], float(r["eps"]))] = (
            round(100 * mean, 2), round(100 * sd, 2), round(100 * r["paper"], 2),
            round(100 * (mean - r["paper"]), 2))
    return out


def test_html_is_balanced_and_has_the_main_structure(parsed):
    assert parsed.errors == [] and parsed.stack == []
    for tag in ("html", "head", "body", "main", "section", "table", "figure"):
        assert tag in parsed.starts, tag
    assert "script" not in parsed.starts


def test_description_with_script_is_text_not_a_tag(parsed, rendered, report_tools):
    assert report_tools["description"] in "".join(parsed.text)
    assert "<script>" not in rendered["html"]
    assert "&lt;script&gt;" in rendered["md"]   # escaped in Markdown too


def test_html_table_numbers_equal_metrics(parsed, rendered):
    expected = expected_cells(rendered["metrics"])
    table = parsed.tables["table-2-mnist"]
    regimes = [c[1] for c in table[0] if c[1] not in ("Attack", "effective parameters")]
    assert regimes == [REGIME_LABELS[r] for r in ("ulm", "clm", "ulm-adv", "clm-adv")]
    labels = {v: k for k, v in ATTACK_LABELS.items()}
    seen = 0
    for row in table[2:]:
        attack = labels[row[0][1]]
        for k, regime in enumerate(("ulm", "clm", "ulm-adv", "clm-adv")):
            (c_rep, rep), (_, paper), (_, delta) = row[1 + 3 * k: 4 + 3 * k]
            assert c_rep.startswith("reproduced")
            key = (attack, regime, 0.3)
            if key not in expected:
                assert rep == "not run" and delta == "not run"
                continue
            mean, sd, want_paper, want_delta = expected[key]
            assert [float(x) for x in NUMBER.findall(rep)] == [mean, sd]
            assert float(paper.rstrip("%")) == want_paper
            assert float(delta) == want_delta
            seen += 1
    assert seen == 14  # 5 attacks x (ULM, CLM) + 2 attacks x (ULM-Adv, CLM-Adv)
    benign = parsed.tables["table-1-mnist"][2]
    assert float(benign[1][1].split("%")[0]) == expected[("benign", "ulm", 0.0)][0]


def test_cells_not_run_say_so(parsed):
    table = parsed.tables["table-3-cifar10"]
    reproduced = [c[1] for row in table[2:] for c in row if c[0].startswith("reproduced")]
    assert len(reproduced) == 20 and set(reproduced) == {"not run"}


def test_markdown_table_numbers_equal_metrics(rendered):
    expected = expected_cells(rendered["metrics"])
    md = rendered["md"]
    block = md.split("### Table 2:")[1].split("###")[0]
    rows = [line for line in block.splitlines() if line.startswith("| ")][1:]
    labels = {v: k for k, v in ATTACK_LABELS.items()}
    seen = 0
    for line in rows:
        cols = [c.strip() for c in line.strip("|").split("|")]
        attack = labels[cols[0]]
        for k, regime in enumerate(("ulm", "clm", "ulm-adv", "clm-adv")):
            rep, paper, delta = cols[1 + 3 * k: 4 + 3 * k]
            if (attack, regime, 0.3) not in expected:
                assert rep == "not run"
                continue
            mean, sd, want_paper, want_delta = expected[(attack, regime, 0.3)]
            assert [float(x) for x in NUMBER.findall(rep)] == [mean, sd]
            assert (float(paper.rstrip("%")), float(delta)) == (want_paper, want_delta)
            seen += 1
    assert seen == 14


def test_summary_is_honest(rendered):
    metrics = rendered["metrics"]
    compared = [r for r in metrics["records"] if r["paper"] is not None]
    within = [r for r in compared if abs(r["mra"] - r["paper"]) <= 0.05]
    sentence = f"{len(within)} of {len(compared)} reproduced cells are within 5.0 points"
    assert sentence in rendered["md"] and sentence in rendered["html"]
    assert "The reproduction misses the paper" in rendered["md"]
    assert "3 of 9 claims hold" in rendered["md"]


def test_departures_warning_and_dataset_note(rendered):
    for text in (rendered["md"], rendered["html"]):
        assert "departs from the paper" in text
        assert "population of 4 instead of 10" in text
        assert "mnist-5k is compared with the paper" in text


def test_figures_embedded_in_html_and_linked_from_markdown(parsed, rendered):
    names = sorted(p.name for p in rendered["out"]["figures"].glob("*.png"))
    assert {"conv1-spread.png", "prse-mnist-clm.png", "saliency-mnist.png",
            "transfer-mnist-clm-pgd-eps0.3.png", "mra-vs-paper-table2-mnist.png"} <= set(names)
    assert len(parsed.images) == len(names)
    for image in parsed.images:
        src = image["src"]
        assert src.startswith("data:image/png;base64,")  # no file or network reference
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", rendered["md"])
    assert sorted(link.split("/")[-1] for link in links) == names
    md_dir = rendered["out"]["report_md"].parent
    assert all((md_dir / link).is_file() for link in links)


def test_provenance_and_threat_models(rendered):
    md = rendered["md"]
    assert "| train-mnist-ulm | 41.2 s" in md and "812 MiB" in md
    for package in ("torch", "torchattacks", "snakemake", "dvc"):
        assert f"- {package}: " in md
    assert "Why the adaptive attack matters" in md
    adaptive = next(r for r in rendered["metrics"]["records"] if r["threat_model"] == "adaptive")
    assert f"{100 * adaptive['mra']:.2f}%" in md.split("## Threat models")[1]


def test_index_lists_every_rendered_spec(rendered, report_tools):
    make_job, run_in = report_tools["make_job"], report_tools["run_in"]
    root = rendered["root"]
    index = (root / "reports" / "index.md").read_text()
    assert "[HTML](fixture/report.html)" in index
    second = make_job(root, spec="fixture-b")
    second["params"]["departures"] = []
    run_in(root, second)
    index = (root / "reports" / "index.md").read_text()
    assert "[HTML](fixture/report.html)" in index and "[HTML](fixture-b/report.html)" in index
    assert "departs from the paper" not in (root / "reports/fixture-b/report.md").read_text()
    assert [e["spec"] for e in write_index(root / "reports")] == ["fixture", "fixture-b"]
