"""Lazy equivalence of two NL-RX regexes by Brzozowski derivatives, before any automaton is built.

Building the minimal DFA of ``(([A-Za-z].*dog.*)|(truck)){7,}`` takes greenery longer than the 5 s limit,
yet ``[A-Z]`` differs from it on the one-letter string ``A``. So ``lmjepa.evaluation.regex`` first searches
the pair's product breadth first, one derivative at a time (Brzozowski 1964; Owens, Reppy & Turon 2009,
"Regular-expression derivatives re-examined"): the state of the product is the pair (∂_w a, ∂_w b) after
reading w, and w is a counterexample as soon as exactly one side is nullable (accepts the empty string).

The alphabet is split into the intervals that no character class of either regex cuts; one character per
interval stands for all of it, so the search is complete. Terms are kept in a normal form (flattened,
deduplicated, ∅ and ε absorbed, ``x{l,h}·x*`` merged into ``x{l,}``), and a pair of identical terms is not
explored further (the same language), so the set of reachable pairs is finite for most NL-RX pairs; a search
that visits every reachable pair without a counterexample proves equivalence. When the pairs exceed
``max_pairs`` the answer is None and the caller builds the automata instead.

Terms: ``("none",)`` ∅, ``("eps",)`` ε, ``("set", ranges, negated)`` one character, ``("cat", a, b)``,
``("or", frozenset)``, ``("and", frozenset)``, ``("not", a)``, ``("rep", a, low, high)`` (high None: ∞).
"""

from __future__ import annotations

import functools
from collections import deque

from ..data.regex_syntax import parse_regex

NONE, EPS = ("none",), ("eps",)
ANY = ("set", (), True)  # no range, negated: every character


def to_term(node: tuple) -> tuple:
    """A ``lmjepa.data.regex_syntax`` parse tree as a derivative term (same language)."""
    kind = node[0]
    if kind == "char":
        return ("set", ((ord(node[1]), ord(node[1])),), False)
    if kind == "class":
        return ("set", tuple((ord(lo), ord(hi)) for lo, hi in node[1]), bool(node[2]))
    if kind == "dot":
        return ANY
    if kind == "empty":
        return EPS
    if kind == "not":
        return _not(to_term(node[1]))
    if kind == "repeat":
        return _rep(to_term(node[1]), node[2], node[3])
    parts = [to_term(child) for child in node[1:]]
    if kind == "union":
        return _or(parts)
    if kind == "inter":
        return _and(parts)
    out = parts[-1]
    for part in reversed(parts[:-1]):
        out = _cat(part, out)
    return out


def _cat(a: tuple, b: tuple) -> tuple:
    if a == NONE or b == NONE:
        return NONE
    if a == EPS:
        return b
    if b == EPS:
        return a
    if a[0] == "cat":  # right-nested: (x·y)·b = x·(y·b)
        return _cat(a[1], _cat(a[2], b))
    head, rest = (b[1], b[2]) if b[0] == "cat" else (b, EPS)
    if head[0] == "rep" and head[2] == 0 and head[3] is None:  # x{l,h}·x* = x{l,}, x·x* = x{1,}
        x = head[1]
        low = a[2] if a[0] == "rep" and a[1] == x else 1 if a == x else None
        if low is not None:
            return _cat(_rep(x, low, None), rest)
    return ("cat", a, b)


def _or(parts) -> tuple:
    flat = set()
    for part in parts:
        flat |= part[1] if part[0] == "or" else {part}
    flat.discard(NONE)
    if ("not", NONE) in flat:  # Σ* absorbs everything
        return ("not", NONE)
    return NONE if not flat else next(iter(flat)) if len(flat) == 1 else ("or", frozenset(flat))


def _and(parts) -> tuple:
    flat = set()
    for part in parts:
        flat |= part[1] if part[0] == "and" else {part}
    if NONE in flat:
        return NONE
    flat.discard(("not", NONE))
    return ("not", NONE) if not flat else next(iter(flat)) if len(flat) == 1 else ("and", frozenset(flat))


def _not(a: tuple) -> tuple:
    return a[1] if a[0] == "not" else ("not", a)


def _rep(a: tuple, low: int, high: int | None) -> tuple:
    if high is not None and high < low:  # dk.brics: the empty language
        return NONE
    if high == 0 or a == EPS:
        return EPS
    if a == NONE:
        return EPS if low == 0 else NONE
    if nullable(a):
        low = 0  # ε ∈ a: a{low,high} = a{0,high}
    if (low, high) == (1, 1):
        return a
    return ("rep", a, low, high)


@functools.lru_cache(maxsize=1 << 18)
def nullable(t: tuple) -> bool:
    """Whether the term's language contains the empty string."""
    kind = t[0]
    if kind in ("none", "set"):
        return False
    if kind == "eps":
        return True
    if kind == "cat":
        return nullable(t[1]) and nullable(t[2])
    if kind == "or":
        return any(nullable(p) for p in t[1])
    if kind == "and":
        return all(nullable(p) for p in t[1])
    if kind == "not":
        return not nullable(t[1])
    return t[2] == 0 or nullable(t[1])  # rep


@functools.lru_cache(maxsize=1 << 18)
def derivative(t: tuple, c: int) -> tuple:
    """∂_c t: the strings w with c·w in the language of ``t`` (``c`` a code point)."""
    kind = t[0]
    if kind in ("none", "eps"):
        return NONE
    if kind == "set":
        inside = any(lo <= c <= hi for lo, hi in t[1])
        return EPS if inside != t[2] else NONE
    if kind == "cat":
        first = _cat(derivative(t[1], c), t[2])
        return _or([first, derivative(t[2], c)]) if nullable(t[1]) else first
    if kind == "or":
        return _or([derivative(p, c) for p in t[1]])
    if kind == "and":
        return _and([derivative(p, c) for p in t[1]])
    if kind == "not":
        return _not(derivative(t[1], c))
    a, low, high = t[1], t[2], t[3]  # rep: ∂(a{l,h}) = ∂a · a{max(l-1,0), h-1}
    return _cat(derivative(a, c), _rep(a, max(low - 1, 0), None if high is None else high - 1))


def _boundaries(t: tuple, points: set[int]) -> None:
    if t[0] == "set":
        for lo, hi in t[1]:
            points.update((lo, hi + 1))
    elif t[0] == "cat":
        _boundaries(t[1], points)
        _boundaries(t[2], points)
    elif t[0] in ("or", "and"):
        for p in t[1]:
            _boundaries(p, points)
    elif t[0] in ("not", "rep"):
        _boundaries(t[1], points)


def search(a: str, b: str, max_pairs: int = 20_000) -> tuple[bool | None, str | None]:
    """Decide whether regexes ``a`` and ``b`` (NL-RX dialect) are equivalent, lazily.

    Returns ``(False, w)`` with a shortest counterexample ``w`` (a string exactly one of them matches),
    ``(True, None)`` when every reachable pair of derivatives was visited without one, or ``(None, None)``
    after ``max_pairs`` pairs (undecided here: build the automata). Raises RegexSyntaxError if either
    does not parse.
    """
    start = (to_term(parse_regex(a)), to_term(parse_regex(b)))
    points: set[int] = {0}
    for term in start:
        _boundaries(term, points)
    letters = sorted(p for p in points if p <= 0x10FFFF)  # one character per interval of the partition
    seen, queue = {start}, deque([(start, "")])
    while queue:
        (x, y), word = queue.popleft()
        if nullable(x) != nullable(y):
            return False, word
        if x == y:  # the same term: the same language from here on, nothing to explore
            continue
        for c in letters:
            pair = (derivative(x, c), derivative(y, c))
            if pair not in seen:
                if len(seen) >= max_pairs:
                    return None, None
                seen.add(pair)
                queue.append((pair, word + chr(c)))
    return True, None
