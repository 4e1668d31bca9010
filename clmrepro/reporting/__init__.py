"""Reports a researcher reads instead of JSON: the paper's tables and claims next to the
reproduced numbers, figures, provenance.

paper       load_paper_tables, paper_value (specs/paper_tables.yaml, Tables 1-5)
tables      aggregation into reproduced | paper | Δ cells; the one place numbers are formatted
claims      the paper's claims as checks (holds / fails / not run) with their evidence
figures     Fig. 4-6 analogues, transfer heat maps, reproduced-vs-paper bars (PNG, Agg)
provenance  spec and lock hashes, git commit, versions, Snakemake benchmark costs
render      render_report (Markdown + self-contained HTML), write_index
"""
