"""Training a population: ULM (independent submodels), CLM (Alg. 1 with PRSE), ULM-Adv, CLM-Adv,
and the field's diversity baselines (ADP, GAL, TRS, DVERGE), trained jointly.

``loop``       ``train_population``: sets a run up, resumes it, hands it to a schedule, and
               returns the training record; ``init_population``
``schedules``  the two orders of minibatches: Alg. 1 (``sequential``) and ``lockstep``
``joint``      the baselines' schedule: one shared order, one loss over all members (the
               loss each baseline's regime module, clmrepro.kinds.regimes, supplies)
``diversity``  the baselines' losses (ADP, GAL, TRS) and DVERGE's feature distillation
``step``       one optimiser step of a trainee (one submodel or a stacked group), the
               adversarial examples of PGD training, the per-epoch test accuracy
``linking``    PRSE: the mask, the partner draw, eq. 4-5
``config``     what a run is told: training, linking, adversarial and execution settings
``state``      resumable state: what is saved, when, and which saved state may be resumed

Uses the shared pieces of ``core`` (models, data, stacked, checkpoints, seeding); never
``core.attacks``.
"""
