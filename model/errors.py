"""One-line error messages: every command reports a failure as a single line, no traceback."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty.

    Selenium's exceptions keep their message in ``msg`` and add a stack trace to ``str()``, so
    ``msg`` is preferred when present.
    """
    text = getattr(error, "msg", None) or str(error)
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(error).__name__
