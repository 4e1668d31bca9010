"""Reports a researcher reads instead of JSON: the paper's tables and claims next to the
reproduced numbers, figures, provenance.

paper       load_paper_tables, paper_value (specs/paper_tables.yaml, Tables 1-5)
stats       95% intervals: t, Wilson, paired t, Newcombe (pure Python; docs/statistics.md)
estimates   records -> replicate units -> a cell's interval, a paired difference
strongest   per image the worst case over every attack: derived "strongest" records
tables      cells as mean [95% interval] vs paper; the one place numbers are formatted
claims      the paper's claims as checks (holds / fails / inconclusive / not run), each
            robustness claim also under the strongest attack
sanity      is the robustness real? checks that catch a failed attack (pass / flag / not run)
robustness  the report's robustness section, assembled once from the checks' results
figures     Fig. 4-6 analogues, transfer heat maps, reproduced-vs-paper bars (PNG, Agg)
provenance  spec and lock hashes, git commit, versions, Snakemake benchmark costs
render      render_report (Markdown + self-contained HTML), write_index
build       the report step's work: scores files -> metrics.json, mra.csv, DVC views, reports
"""
