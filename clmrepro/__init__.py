"""clmrepro: reproduce and extend 'Resilience from Diversity' (Jasser & Garibay).

Layers, imported one way: spec -> plan -> emit | steps -> core.  See docs/architecture.md.
"""

__version__ = "0.1.0"
