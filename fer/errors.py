"""User-facing errors: one line that names the file and what was expected."""


class FerError(Exception):
    """An error the user can fix (bad data, bad config, missing file); printed without traceback."""
