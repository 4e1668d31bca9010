"""Crafting adversarial sets for one attack on one population, resumably.

``kinds``       what an attack kind is to the executors (the kinds themselves are modules
                of ``clmrepro.kinds.attacks``, handed in); exact params; the eps-ball check
``work``        the work plan: units (samples, crafting submodel, seed), chunks, running
                chunks through an executor with a store, assembling the sets
``executors``   which executor runs ``paper``/``transfer`` units (``sequential`` or
                ``batched``), and whole sets in memory
``sequential``  torchattacks on one submodel at a time (the reference executor)
``batched``     sign-gradient kinds (FGSM, PGD, MI-FGSM, EOT-PGD as PGD) with the
                population as one computation
``adaptive``    attacks on the random-dispatch defence itself (exact expected loss;
                EOT and AutoAttack ``rand`` on ``RandomDispatch``)
``threats``     every threat model's set for one attack (what the attack step runs)
``state``       resumable attack state: finished chunks under a fingerprint

Imports go down the work plan: ``work`` knows executors only as a protocol; the choice is
made in ``executors`` and ``threats``.  Uses the shared pieces of ``core``; never
``core.training``.
"""
