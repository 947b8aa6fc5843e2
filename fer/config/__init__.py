"""The workflow's config, checked: :mod:`fer.config.check` (``fer check-config`` and the
workflow's planning run the same checks). Imports no torch: the workflow reads it at planning."""
