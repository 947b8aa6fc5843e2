"""One module per data set, each registering its adapter with :func:`fer.data.register_dataset`.

Every module here is imported when :mod:`fer.data` is: adding a data set is adding a module.
"""
