"""One module per kind of thing a spec can name (issue 25): an attack, a training regime, a
robustness check.  Each module holds everything about its kind: its spec model (knobs,
defaults, descriptions), how its knobs resolve into a job's params, what it costs for the plan,
what it writes, and how it runs (torch imported lazily, inside the functions that run it).
A registry per family (``kinds.attacks``, ``kinds.regimes``, ``kinds.checks``) lists the
modules; the spec, the plan, the executors and the report look a kind up there instead of
branching on its name.  docs/extending.md shows how to add one.

Layer 2: above ``core`` (whose science a kind runs) and ``fields`` (the types its spec model
uses), below ``spec`` (which assembles the kinds' spec models into the spec language).
"""
