"""What a request may carry, checked before anything reads it: pure functions.

A JSON body is parsed once (:mod:`.base`), then walked here, without recursion, for the
two things every later step (nbformat's validation, ``copy.deepcopy``, ``json.dumps``,
the renderer, the database) would otherwise trip on with an internal error:

- **nesting** deeper than :data:`MAX_DEPTH` levels. A real notebook nests about ten
  levels (cells → outputs → data → a JSON output's own structure); 900 levels of
  metadata made those recursive steps raise ``RecursionError``.
- **lone UTF-16 surrogates** (``"\\ud800"``): JSON may escape them, Python keeps them in
  a ``str``, and they cannot be encoded as UTF-8 for a file, a page or a row.

Refusals quote user values through :func:`quoted`, which keeps a short prefix: a 20 MB
value must not come back in the answer, nor three times in the log.
"""

from __future__ import annotations

from typing import Any

#: Deepest nesting of objects and arrays accepted in a request body.
MAX_DEPTH = 64
#: Characters of a user's value quoted in a refusal.
QUOTE_CHARS = 40

#: A place in a body, kept as a chain of (parent, key) so paths are built only on error.
Where = tuple[Any, str | int] | None


class InputError(ValueError):
    """A request body no handler should see; the message says where and what."""


def quoted(value: Any, limit: int = QUOTE_CHARS) -> str:
    """``value``'s repr, cut to its first ``limit`` characters with its length when longer.

    Unprintable characters (``\\x00``, ``\\ud800``) stay escaped, as ``repr`` writes them.
    """
    if not isinstance(value, str):
        return clipped(repr(value), limit)
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def clipped(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (for messages of errors raised on user input)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def check_body(body: Any) -> None:
    """Refuse nesting past :data:`MAX_DEPTH` and lone surrogates, naming where they are."""
    stack: list[tuple[Any, int, Where]] = [(body, 0, None)]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, str):
            _check_text(value, where)
            continue
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if depth >= MAX_DEPTH:
            raise InputError(f"request body nests deeper than {MAX_DEPTH} levels (at "
                             f"{path_of(where)}): send the notebook as JupyterLab saves it")
        for key, item in items:
            if isinstance(key, str):
                _check_text(key, where)
            stack.append((item, depth + 1, (where, key)))


def _check_text(text: str, where: Where) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = repr(text[e.start:e.end])
        raise InputError(f"request body has a lone UTF-16 surrogate ({bad}) in "
                         f"{path_of(where)}: send valid Unicode text") from None


def path_of(where: Where, limit: int = 12) -> str:
    """``'notebook'.cells[3].source``-like: where a value sits (the top level if nowhere)."""
    parts: list[str] = []
    while where is not None:
        where, key = where
        parts.append(f"[{key}]" if isinstance(key, int) else f".{quoted(key, 20)}")
    if not parts:
        return "the top level"
    parts.reverse()
    if len(parts) > limit:
        parts = [*parts[:limit // 2], "…", *parts[-limit // 2:]]
    return "".join(parts).lstrip(".")
