"""The rendered fixture report: numbers equal metrics.json, HTML well formed, text escaped."""

from __future__ import annotations

import base64
import json
import math
import re
from html.parser import HTMLParser

import pytest

from clmrepro.reporting.paper import ATTACK_LABELS, REGIME_LABELS
from clmrepro.reporting.render import index_entries, write_index

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


T_975 = {2: 4.302652729749464}   # Student t, 0.975 quantile, df = K − 1 (printed tables)
Z_975 = 1.959963984540054


def by_hand(values):
    """Mean and 95% t interval over replicates, clipped to [0, 1]."""
    k = len(values)
    mean = sum(values) / k
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1))
    half = T_975[k - 1] * sd / math.sqrt(k)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def wilson_by_hand(p, n):
    z2 = Z_975 ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = math.sqrt(z2) / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return p, centre - half, centre + half


def expected_cells(metrics):
    """(attack, regime, eps) -> (mean, low, high, paper, vs paper) in percent, from the
    replicate records of metrics.json."""
    groups = {}
    for r in metrics["records"]:
        if r["paper"] is not None:
            groups.setdefault((r["attack"], r["regime"], float(r["eps"])), []).append(r)
    out = {}
    for key, records in groups.items():
        assert sorted(r["replicate"] for r in records) == [0, 1, 2]
        mean, low, high = by_hand([r["mra"] for r in records])
        paper = records[0]["paper"]
        consistent = low - 0.05 <= paper <= high + 0.05
        out[key] = (round(100 * mean, 2), round(100 * low, 2), round(100 * high, 2),
                    round(100 * paper, 2),
                    "consistent" if consistent else round(100 * (mean - paper), 2))
    return out


def vs_paper(text):
    return text if text == "consistent" else float(text)


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
            (c_rep, rep), (_, paper), (c_vs, vs) = row[1 + 3 * k: 4 + 3 * k]
            assert c_rep.startswith("reproduced") and c_vs.startswith("vs-paper")
            key = (attack, regime, 0.3)
            if key not in expected:
                assert rep == "not run" and vs == "not run"
                continue
            mean, low, high, want_paper, want_vs = expected[key]
            assert [float(x) for x in NUMBER.findall(rep)] == [mean, low, high]
            assert float(paper.rstrip("%")) == want_paper
            assert vs_paper(vs) == want_vs
            seen += 1
    assert seen == 14  # 5 attacks x (ULM, CLM) + 2 attacks x (ULM-Adv, CLM-Adv)
    benign = parsed.tables["table-1-mnist"][2]
    assert [float(x) for x in NUMBER.findall(benign[1][1])] == \
        list(expected[("benign", "ulm", 0.0)][:3])


def test_cells_not_run_say_so(parsed):
    table = parsed.tables["table-3-cifar10"]
    reproduced = [c[1] for row in table[2:] for c in row if c[0].startswith("reproduced")]
    assert len(reproduced) == 20 and set(reproduced) == {"not run"}


def test_markdown_table_numbers_equal_metrics(rendered):
    expected = expected_cells(rendered["metrics"])
    md = rendered["md"]
    block = md.split("### Table 2:")[1].split("###")[0]
    assert "Intervals: t over replicates (K=3)." in block
    rows = [line for line in block.splitlines() if line.startswith("| ")][1:]
    labels = {v: k for k, v in ATTACK_LABELS.items()}
    seen = 0
    for line in rows:
        cols = [c.strip() for c in line.strip("|").split("|")]
        attack = labels[cols[0]]
        for k, regime in enumerate(("ulm", "clm", "ulm-adv", "clm-adv")):
            rep, paper, vs = cols[1 + 3 * k: 4 + 3 * k]
            if (attack, regime, 0.3) not in expected:
                assert rep == "not run"
                continue
            mean, low, high, want_paper, want_vs = expected[(attack, regime, 0.3)]
            assert [float(x) for x in NUMBER.findall(rep)] == [mean, low, high]
            assert (float(paper.rstrip("%")), vs_paper(vs)) == (want_paper, want_vs)
            seen += 1
    assert seen == 14


def test_summary_is_honest(rendered):
    expected = expected_cells(rendered["metrics"]).values()
    consistent = sum(cell[4] == "consistent" for cell in expected)
    sentence = (f"{consistent} of {len(expected)} reproduced cells are consistent with the "
                f"paper (its number inside the 95% interval widened by 5.0 points); "
                f"{len(expected) - consistent} are not")
    assert 0 < consistent < len(expected)
    assert sentence in rendered["md"] and " ".join(sentence.split()) in " ".join(
        rendered["html"].split())
    assert "The reproduction misses the paper" in rendered["md"]
    # the saliency claim ran on MNIST/LeNet5, not the paper's CIFAR-10/ResNet18: not counted
    assert ("Claims in the paper's setting: 1 of 12 hold, 0 fail, 1 inconclusive, 10 not run."
            in rendered["md"])
    assert "Not the paper's setting, so not counted: CLM saliency maps" in rendered["md"]


def test_claims_print_interval_and_k(parsed, rendered):
    md = rendered["md"].split("## The paper's claims")[1].split("## Threat models")[0]
    assert "### mnist-clm-beats-ulm: **holds** (K = 3)" in md
    assert "### mnist-clm-benign-cost: **inconclusive** (K = 3)" in md
    assert "### cifar10-clm-beats-ulm: **not run**\n" in md
    claims = {c["id"]: c for c in rendered["metrics"]["claims"]}
    row = claims["mnist-clm-benign-cost"]["evidence"][0]
    want = (f"ULM − CLM {100 * row['mean']:+.2f} [{100 * row['low']:+.2f}, "
            f"{100 * row['high']:+.2f}] points (t over replicates, K = 3) → **inconclusive**")
    assert want in md
    # the claimed relation and the measured values apart: "CLM 46% > ULM 49%" must not appear
    assert re.search(r"- Benign: claimed ULM costs < 1 pt vs CLM; measured ULM \d+\.\d\d%, "
                     r"CLM \d+\.\d\d%; ULM − CLM", md)
    assert row["low"] < 0.01 < row["high"]             # straddles the one-point bound
    # the HTML evidence tables: one outcome per row (5 + 2 holds; 1 + 2 inconclusive)
    outcomes = [cells[-1][1] for t in parsed.tables.values() for cells in t
                if cells and cells[-1][0].startswith("verdict-")]
    assert outcomes.count("inconclusive") == 3 and outcomes.count("holds") == 7


def test_other_results_from_version_1_files_use_wilson(parsed, rendered):
    """The FakeData run is one replicate in version-1 files: Wilson over its 100 images."""
    fake = [r for r in rendered["metrics"]["records"] if r["experiment"] == "fake"
            and r["threat_model"] == "paper"]
    assert len(fake) == 4 and {r["replicate"] for r in fake} == {0}
    table = next(t for t in parsed.tables.values() if t[0][0][1] == "experiment"
                 and any(c[1] == "samples" for c in t[0]))
    rows = {(row[2][1], row[3][1]): row for row in table[1:] if row[0][1] == "fake"}
    for r in fake:
        row = rows[(r["population"], ATTACK_LABELS[r["attack"]])]
        want = [round(100 * v, 2) for v in wilson_by_hand(r["mra"], 100)]
        assert [float(x) for x in NUMBER.findall(row[5][1])] == want
        assert (row[6][1], row[7][1]) == ("1", "100")


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
    import torch

    # the fixture's training records predate issue 17: their machine is not recorded
    assert f"- CPU kernels (report job): {torch.backends.cpu.get_cpu_capability()}" in md
    assert "- CPU kernels (training jobs): not recorded (" in md
    assert "Why the adaptive attack matters" in md
    threat = md.split("## Threat models")[1].split("## Results the paper")[0]
    adaptive = [r["mra"] for r in rendered["metrics"]["records"]
                if r["threat_model"] == "adaptive" and r["experiment"] == "mnist"]
    mean, low, high = by_hand(adaptive)
    assert f"{100 * mean:.2f}% [{100 * low:.2f}, {100 * high:.2f}] (K=3, N=200)" in threat
    # the K = 1 FakeData run attacked 50 images under transfer: a wider Wilson interval
    transfer = next(r for r in rendered["metrics"]["records"] if r["experiment"] == "fake"
                    and r["population"] == "clm" and r["threat_model"] == "transfer")
    mean, low, high = wilson_by_hand(transfer["mra"], 50)
    assert f"{100 * mean:.2f}% [{100 * low:.2f}, {100 * high:.2f}] (K=1, N=50)" in threat


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


def test_index_reads_version_1_metrics(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.json").write_text(json.dumps({
        "schema_version": 1, "spec": "old", "description": "before replicates",
        "records": [{"mra": 0.5, "paper": 0.52}],
        "claims": [{"id": "x", "verdict": "holds"}],
        "summary": {"claims_hold": 1, "claims_run": 1, "claims_total": 9,
                    "cells_compared": 1, "cells_within": 1, "tolerance_points": 5.0}}))
    (entry,) = index_entries(tmp_path)
    assert (entry["within"], entry["compared"], entry["claims_hold"]) == (1, 1, 1)


# ---- Is the robustness real? (the fixture's check files) ------------------------------------

def sanity_result(metrics, population, check, threat):
    (found,) = [r for r in metrics["sanity"] if (r["experiment"], r["population"], r["check"],
                                                r["threat_model"]) ==
                ("mnist", population, check, threat)]
    return found


def test_sanity_table_cells_equal_metrics(parsed, rendered):
    """The fixture's CLM masks its gradients under the adaptive threat model: 3 of 20 images
    per replicate with a zero DLR gradient, and Square below the PGD variants."""
    metrics = rendered["metrics"]
    table = parsed.tables["sanity-mnist-clm"]
    assert [c[1] for c in table[0]] == ["check", "paper protocol", "transfer", "adaptive"]
    rows = {row[0][1]: row[1:] for row in table[1:]}
    assert list(rows) == ["iterative vs single-step", "budget", "convergence",
                          "gradient-free vs gradient-based", "white-box vs transfer",
                          "zero gradients", "silent success", "random noise"]
    zero = sanity_result(metrics, "clm", "zero-gradients", "adaptive")
    assert zero["verdict"] == "flag"
    (measure,) = zero["evidence"]
    assert (measure["value"], measure["of"]) == (9, 60)
    cls, text = rows["zero gradients"][2]
    assert cls == "check check-flag"
    assert text == "flagimages with a zero DLR-loss gradient at the clean point: 9 of 60 (15.00%)"
    square = sanity_result(metrics, "clm", "gradient-free", "adaptive")
    difference = next(e for e in square["evidence"] if e["kind"] == "difference")
    cls, text = rows["gradient-free vs gradient-based"][2]
    assert cls == "check check-flag"
    assert [float(x) for x in NUMBER.findall(text)] == [
        round(100 * difference["interval"][k], 2) for k in ("mean", "low", "high")]
    assert rows["gradient-free vs gradient-based"][1] == ["check check-none", "—"]
    cls, text = rows["iterative vs single-step"][1]
    assert (cls, text) == ("check check-not-run", "not run" + sanity_result(
        metrics, "clm", "iterative-vs-single-step", "transfer")["reason"])
    # every other population passes or is not run
    others = [r for r in metrics["sanity"] if r["population"] != "clm"]
    assert {r["verdict"] for r in others} == {"pass", "not run"}


def test_sanity_summary_and_reading(rendered):
    metrics, md = rendered["metrics"], rendered["md"]
    summary = metrics["summary"]
    total = len(metrics["sanity"])
    assert (summary["checks_flagged"], summary["checks_passed"] + summary["checks_not_run"]) == (
        2, total - 2)
    assert (f"{summary['checks_flagged']} of {total} checks flag, {summary['checks_passed']} "
            f"pass, {summary['checks_not_run']} not run.") in md
    section = md.split("## Is the robustness real?")[1].split("## The paper's claims")[0]
    clm = section.split("### mnist/clm (CLM)")[1].split("###")[0]
    assert "| zero gradients                  |" in clm
    assert ("2 of 18 checks flag, 12 pass, 4 not run. Flagged: gradient-free vs "
            "gradient-based under adaptive (gradient attacks − with Square: ") in clm
    assert "zero gradients under adaptive (images with a zero DLR-loss gradient at the " \
           "clean point: 9 of 60 (15.00%))" in clm
    assert "- **budget (adaptive)**: Flag when the 95% interval" in section


def test_claims_show_the_strongest_reading(rendered, parsed):
    md = rendered["md"].split("## The paper's claims")[1].split("## Threat models")[0]
    beats = md.split("### mnist-clm-beats-ulm")[1].split("###")[0]
    # the fixture's scores predate per-image tables: no strongest records to read
    assert ("Under the strongest attack (adaptive; per image the worst of every attack run, "
            "ARC included): **not run**.") in beats
    split = md.split("### mnist-eps0.4-split")[1].split("###")[0]
    assert "No reading under the strongest attack: the claim is that the winner depends on " \
           "the attack family" in split
    claims = {c["id"]: c for c in rendered["metrics"]["claims"]}
    assert claims["mnist-eps0.4-split"]["strongest"] is None
    strongest = claims["mnist-clm-beats-ulm"]["strongest"]
    assert (strongest["verdict"], strongest["threat_model"]) == ("not run", "adaptive")
    assert strongest["evidence"][0]["label"] == "strongest (per image), adaptive"
    assert 'class="strongest-row"' in rendered["html"]
