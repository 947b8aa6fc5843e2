"""Training: one recipe-driven trainer for both models and every data set (`fer train`).

Modules: :mod:`~fer.train.recipe` (every knob, declared once), :mod:`~fer.train.data` (honest
splits, the class-balanced sampler, batches from the prepared arrays), :mod:`~fer.train.augment`
(the reference augmentation as batched tensor ops), :mod:`~fer.train.loop` (model, optimiser,
epochs), :mod:`~fer.train.state` (resume state and outputs) and :mod:`~fer.train.cli` (the verb).
Importing this package imports no torch: the workflow reads :mod:`~fer.train.recipe` at planning.
"""
