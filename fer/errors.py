"""User-facing errors: one line that names the file and what was expected."""


class FerError(Exception):
    """An error the user can fix (bad data, bad config, missing file); printed without traceback."""


class FerWarning(UserWarning):
    """Something the user should know about their inputs (e.g. a model trained on synthetic
    data); the ``fer`` command prints it as one ``warning:`` line."""


def parse_json_object(text: str, where: str) -> dict:
    """A JSON object given on the command line; anything else is a FerError naming ``where``."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FerError(f"{where}: not valid JSON ({exc.msg} at char {exc.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise FerError(f"{where}: expected a JSON object, got {text!r}")
    return value
