"""The science: populations of submodels, how they are trained, attacked and scored.

Two subsystems over shared pieces.  Imports go down this list, never up: the shared pieces
import neither subsystem, and the two subsystems do not import each other.

``training/``   training a population (ULM, CLM with PRSE, their PGD variants, the diversity
                baselines): its own map
``attacks/``    crafting adversarial sets under the paper, transfer and adaptive threat
                models: its own map

Shared pieces:

``models``      LeNet5, ResNet18, the counter-linked layer
``data``        MNIST, CIFAR-10, the bundled MNIST-5k; the decoded-dataset cache; the split
``fetch``       one HTTP download into a temporary file, its length and md5 checked, renamed
``sources``     each dataset's source files: torchvision's URLs and checksums, their layout
``prepare``     the data stage: sources checked once (under a lock), decoded, with a manifest
``stacked``     ``StackedPopulation``: n submodels as one batched computation
``runtime``     how attack and scoring forward passes run (batched, precision, memory format)
``metrics``     per-submodel accuracy, MRA (eq. 6), the transfer matrix
``saliency``    saliency maps and their pairwise cosine similarity (eq. 7-8)
``checkpoints`` atomic writes, population files, safe loading
``seeding``     seeds derived from the spec's seed; private generators
``devices``     device choice and the process settings every job shares
``interrupt``   the stop request long loops ask and the exception they raise
``per_image``   per-image correctness tables, packed into scores records and decoded
``ensemble``    the inference rules: random dispatch, averaging, majority vote
``packages``    installed package versions (data manifests, report provenance)

core imports nothing of specs, plans, Snakemake, DVC, steps or reports (docs/architecture.md).
"""
