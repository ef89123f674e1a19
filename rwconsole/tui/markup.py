"""Text from outside the console (labels, URLs, errors, config values) placed into console markup.

Rich's ``escape`` only protects ``[`` before a letter, ``#``, ``/`` or ``@``; Textual's markup also
reads ``[$name]`` as a theme variable, so a label value such as ``[$error]`` turned into a style and
vanished from the screen. Here every ``[`` is escaped. Textual's parser takes one backslash before
``[`` as the escape and every other backslash literally, so nothing else needs doubling; it has no
way to write a backslash right before a tag, so a trailing backslash gets a zero-width space after
it (otherwise it would escape the closing tag that follows the text).
"""

from __future__ import annotations

_ZERO_WIDTH_SPACE = "\u200b"


def escape(text: str) -> str:
    """``text`` shown literally inside Textual markup."""
    escaped = text.replace("[", "\\[")
    if escaped.endswith("\\"):
        escaped += _ZERO_WIDTH_SPACE
    return escaped
