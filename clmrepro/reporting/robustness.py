"""The report's robustness section, "Is the robustness real?", assembled in this one place.

:func:`assemble` runs the checks of reporting.sanity once on the report's records and the
sanity job's check files and returns a :class:`RobustnessSection`: the results, one view per
population (checks as rows, threat models as columns), the verdict counts, each distinct rule
with its source, and the Markdown tables. metrics.json (reporting.build: its ``sanity`` list
and the ``checks_*`` summary counts) and both rendered reports (the templates
``robustness.md.j2`` and ``robustness.html.j2``, included by the report templates) read this
object and compute nothing of their own. The checks themselves (rules, thresholds, sources)
live in reporting.sanity; docs/sanity.md describes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tabulate import tabulate

from clmrepro.reporting.paper import THREAT_LABELS
from clmrepro.reporting.sanity import (CHECK_TITLES, CHECK_VERDICTS, FLAG, PASS, CheckResult,
                                       SanityView, decode_check_file, measure_text,
                                       run_checks, sanity_views)
from clmrepro.reporting.tables import NOT_RUN, THREAT_MODELS, markdown_text

TEXT = (
    "Checks that catch a failed attack (docs/sanity.md gives each rule, its source and what to "
    "do): per population, each check under each threat model says flag, pass or not run, with "
    "the numbers it compared (differences as points with their 95% interval, paired by "
    "replicate for K ≥ 2 and image by image for K = 1). A flag means the attack behind a "
    "robustness number may have failed, so that number is an upper bound; — marks a check that "
    "does not apply to a threat model. The strongest row (per image the worst of every attack "
    "that ran, the checks' own attacks included) of a population and threat model a check "
    "flags is marked an upper bound too, with the checks that flag it.")
NONE_RAN = "No check ran: the inputs hold no attack record and no check file."
COLUMNS = ("check",) + tuple(THREAT_LABELS[t] for t in THREAT_MODELS)


def read_check_files(paths: list[str]) -> list[dict]:
    """The sanity job's check files, decoded (reporting.sanity.decode_check_file)."""
    out = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            out.append(decode_check_file(json.load(handle), str(path)))
    return out


def rules(results: list[CheckResult]) -> list[tuple[str, str, str]]:
    """(check title, rule, source), each distinct rule once, in check order; a check whose
    rule differs between threat models names them ("budget (adaptive)")."""
    order = list(CHECK_TITLES)
    scopes: dict[tuple[str, str, str], set[str]] = {}
    for r in results:
        scopes.setdefault((r.check, r.rule, r.source), set()).add(r.threat_model)
    out = []
    for (check, rule, source), threats in sorted(scopes.items(),
                                                 key=lambda item: order.index(item[0][0])):
        title = CHECK_TITLES[check]
        if sum(c == check for c, _, _ in scopes) > 1:
            named = [THREAT_LABELS[t] for t in THREAT_MODELS if t in threats]
            title = f"{title} ({', '.join(named)})"
        out.append((title, rule, source))
    return out


def evidence_text(result: CheckResult) -> str:
    """The key evidence, then every other measure that flags ("; also: ..."): a cell never
    hides a number that flags (the convergence check's incomplete-trace share beside its
    doubled-steps move, issue 26)."""
    key = result.key_measure
    others = [measure_text(m) for m in result.evidence if m.flags and m is not key]
    return "; also: ".join([result.key_text] + others) if result.key_text else ""


def cell_markdown(result: CheckResult | None) -> str:
    """"**flag**: PGD − FGSM ...": the verdict as a word, then its evidence
    (:func:`evidence_text`)."""
    if result is None:
        return "—"
    word = f"**{result.verdict}**" if result.verdict == FLAG else result.verdict
    text = evidence_text(result)
    return f"{word}: {markdown_text(text)}" if text else word


@dataclass(frozen=True)
class RobustnessSection:
    """Everything the reports and metrics.json say about the checks (module docstring)."""

    results: tuple[CheckResult, ...] = ()
    views: tuple[SanityView, ...] = ()
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECK_VERDICTS, 0))
    rules: tuple[tuple[str, str, str], ...] = ()
    text: str = TEXT
    none_ran: str = NONE_RAN
    threat_models: tuple[str, ...] = THREAT_MODELS
    columns: tuple[str, ...] = COLUMNS
    evidence_text = staticmethod(evidence_text)     # for the HTML template

    @property
    def counts_text(self) -> str:
        """"2 of 16 checks flag, 9 pass, 5 not run."."""
        return (f"{self.counts[FLAG]} of {len(self.results)} checks flag, "
                f"{self.counts[PASS]} pass, {self.counts[NOT_RUN]} not run.")

    def markdown_tables(self) -> list[str]:
        """One GitHub table per population view, cells by :func:`cell_markdown`."""
        return [tabulate([[title] + [cell_markdown(cells.get(t)) for t in self.threat_models]
                          for title, cells in view.rows],
                         headers=list(self.columns), tablefmt="github", disable_numparse=True)
                for view in self.views]


def assemble(records: list[dict], check_files: list[dict]) -> RobustnessSection:
    """The section from the report's records (with ``per_image``) and the decoded check
    files: every check run once (reporting.sanity.run_checks)."""
    results = run_checks(records, check_files)
    return RobustnessSection(
        results=tuple(results), views=tuple(sanity_views(results)),
        counts={v: sum(r.verdict == v for r in results) for v in CHECK_VERDICTS},
        rules=tuple(rules(results)))
