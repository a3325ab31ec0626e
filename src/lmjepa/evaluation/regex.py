"""Semantic (DFA-equivalence) match for NL-RX regexes, in the dk.brics.automaton dialect.

The grammar is dk.brics.automaton's RegExp (``lmjepa.data.regex_syntax`` parses it): ``&`` is
intersection, ``~`` complements against all strings, so ``~a*`` is ``(~a)*`` and ``.*X&Y.*`` is
``(.*X)&(Y.*)``; ``a|``, ``a&`` and the empty regex are syntax errors.

``\\b``: dk.brics reads ``\\x`` as the literal character x, so ``\\b`` is the letter ``b`` here,
exactly as in the deep-regex evaluation that defined NL-RX semantic accuracy — even though the
NL-RX generator meant a word boundary. Under this reading some targets denote the empty language
or every string (see ``degenerate``); report semantic accuracy with those counted separately.

Automata come from ``greenery`` (``Fsm`` union / intersection / concatenation / complement).
Compiling some targets takes seconds, so ``equivalent`` has a per-pair time limit and a cache.
"""

from __future__ import annotations

import functools
import multiprocessing
import signal
import threading
from contextlib import contextmanager

import numpy as np
from greenery.charclass import DOT, Charclass
from greenery.fsm import EPSILON, Fsm, from_charclass

from ..data.regex_syntax import RegexSyntaxError, parse_regex
from .regex_search import search

__all__ = ["RegexSyntaxError", "compile_regex", "degenerate", "equivalent", "target_language"]


def minimise(fsm: Fsm) -> Fsm:
    """The minimal complete DFA of ``fsm`` by Moore's partition refinement (unreachable states dropped).

    Same language and state count as greenery's ``Fsm.reduce`` (Brzozowski's double reversal, whose
    reversal step scans every state for every predecessor: seconds on the nested ``{n,}`` repeats of NL-RX
    targets); ``_fast_minimisation`` puts this in its place while lmjepa builds and compares automata.
    """
    alphabet = sorted(fsm.alphabet)
    seen, stack = {fsm.initial}, [fsm.initial]
    while stack:
        for target in fsm.map.get(stack.pop(), {}).values():
            if target not in seen:
                seen.add(target)
                stack.append(target)
    states = sorted(seen, key=repr)
    number = {state: i for i, state in enumerate(states)}
    sink = len(states)  # a missing transition goes to a dead sink state (greenery's maps are complete anyway)
    table = np.full((len(states) + 1, len(alphabet)), sink, dtype=np.int64)
    for state, i in number.items():
        row = fsm.map.get(state, {})
        table[i] = [number.get(row.get(symbol), sink) for symbol in alphabet]
    block = np.array([int(state in fsm.finals) for state in states] + [2], dtype=np.int64)
    count = len(np.unique(block))
    while True:  # refine by (own block, the blocks of the successors) until no block splits
        block, new_count = _row_ids(np.column_stack([block, block[table]]))
        if new_count == count:
            break
        count = new_count
    transitions = {int(block[i]): {symbol: int(block[table[i, j]]) for j, symbol in enumerate(alphabet)}
                   for i in range(len(states))}
    kept = {int(block[i]) for i in range(len(states))}
    transitions = {b: {a: t for a, t in row.items() if t in kept} for b, row in transitions.items()}
    return Fsm(alphabet=fsm.alphabet, states=kept, initial=int(block[number[fsm.initial]]),
               finals={int(block[number[s]]) for s in states if s in fsm.finals}, map=transitions)


def _row_ids(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """Ids numbering the distinct rows of an (n, m) int array, and how many there are. Plain integer sorts:
    ``np.unique(axis=0)`` compares structured rows through Python, where a time-limit signal raised
    mid-sort surfaces as a TypeError instead of the time-out."""
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    ids = np.concatenate([[0], np.cumsum(np.any(ordered[1:] != ordered[:-1], axis=1))])
    out = np.empty(len(rows), dtype=np.int64)
    out[order] = ids
    return out, int(ids[-1]) + 1


@contextmanager
def _fast_minimisation():
    """Within the block, greenery's own operations (which end in ``.reduce()``) minimise with ``minimise``.
    Scoped, and restored on exit; lmjepa only builds automata in one thread at a time."""
    original = Fsm.reduce
    Fsm.reduce = minimise
    try:
        yield
    finally:
        Fsm.reduce = original


def _power(fsm: Fsm, n: int) -> Fsm:
    """``fsm`` concatenated ``n`` times, minimised after each step (greenery's ``times`` builds all ``n``
    copies in one subset construction, whose states grow with ``n``: seconds for ``(…|…){6,}``)."""
    out = EPSILON
    for _ in range(n):
        out = (out + fsm).reduce()
    return out


def _to_fsm(node: tuple) -> Fsm:
    """The (reduced) automaton of a parse tree of ``lmjepa.data.regex_syntax``."""
    kind = node[0]
    if kind == "char":
        return from_charclass(Charclass(node[1]))
    if kind == "class":
        return from_charclass(Charclass(node[1], negated=node[2]))
    if kind == "dot":
        return from_charclass(DOT)
    if kind == "empty":
        return EPSILON
    if kind == "not":
        return _to_fsm(node[1]).everythingbut().reduce()
    if kind == "repeat":
        fsm, low, high = _to_fsm(node[1]), node[2], node[3]
        if high is not None and high < low:
            return from_charclass(DOT) & EPSILON  # dk.brics: the empty language
        if high is None:
            return (_power(fsm, low) + fsm.star()).reduce()
        return (_power(fsm, low) + _power((fsm | EPSILON).reduce(), high - low)).reduce()
    parts = [_to_fsm(child) for child in node[1:]]
    combine = {"union": Fsm.union, "inter": Fsm.intersection, "concat": Fsm.concatenate}[kind]
    return combine(*parts).reduce()


@functools.lru_cache(maxsize=8192)
def compile_regex(text: str) -> Fsm:
    """Minimal DFA of an NL-RX regex. Raises RegexSyntaxError if ``text`` does not parse."""
    with _fast_minimisation():
        return _to_fsm(parse_regex(text)).reduce()


def degenerate(text: str) -> str | None:
    """``"empty"`` if the regex matches no string, ``"all"`` if it matches every string, else None."""
    fsm = compile_regex(text)
    if fsm.empty():
        return "empty"
    if fsm.everythingbut().empty():
        return "all"
    return None


class _Timeout(Exception):
    pass


@contextmanager
def _alarm(seconds: float):
    def raise_timeout(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call_into(fn, args, queue) -> None:
    queue.put(fn(*args))


def _with_time_limit(fn, args: tuple, timeout_s: float):
    """``fn(*args)``, or raise TimeoutError after ``timeout_s`` seconds.

    In the main thread the limit is a SIGALRM (no process start-up); elsewhere ``fn`` runs in a
    forked process that is killed at the limit.
    """
    if threading.current_thread() is threading.main_thread():
        try:
            with _alarm(timeout_s):
                return fn(*args)
        except _Timeout:
            raise TimeoutError(f"no answer within {timeout_s} s") from None
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    worker = context.Process(target=_call_into, args=(fn, args, queue), daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        worker.kill()
        worker.join()
        raise TimeoutError(f"no answer within {timeout_s} s")
    return queue.get()


_OPERATORS = frozenset("|*+?{}~&[]\\")


def fixed_length(text: str) -> int | None:
    """Length of every string ``text`` matches when it is a plain sequence of literals, ``.`` and
    balanced parentheses (no operator, class or escape) — as prose is; None for any other regex."""
    text, depth = text.strip(), 0
    if any(char in _OPERATORS for char in text):
        return None
    for char in text:
        depth += (char == "(") - (char == ")")
        if depth < 0:
            return None
    return len(text) - 2 * text.count("(") if depth == 0 else None


def shortest_length(fsm: Fsm) -> int | None:
    """Length of the shortest string ``fsm`` accepts (breadth-first search); None if its language is empty."""
    frontier, seen, length = {fsm.initial}, {fsm.initial}, 0
    while frontier:
        if frontier & set(fsm.finals):
            return length
        frontier = {target for state in frontier for target in fsm.map.get(state, {}).values()} - seen
        seen |= frontier
        length += 1
    return None


SEARCH_PAIRS = 2000
"""Derivative pairs the lazy search visits before it leaves the pair to the automata."""


def _decide(a: str, b: str) -> bool:
    try:
        # Cheap, sound shortcut: a fixed-length pattern (typically a prose answer, whose automaton
        # takes seconds to build) cannot equal a regex whose shortest string has another length.
        for fixed, other in ((a, b), (b, a)):
            length = fixed_length(fixed)
            if length is not None and shortest_length(compile_regex(other)) != length:
                return False
        # Lazy product search by derivatives: a short counterexample (or a small closed product) decides the
        # pair before any automaton is built (regex_search.py; e.g. `(…|…){7,}` vs `[A-Z]`, issue 32).
        decided, _ = search(a, b, max_pairs=SEARCH_PAIRS) if SEARCH_PAIRS else (None, None)
        if decided is not None:
            return decided
        first, second = compile_regex(a), compile_regex(b)
        with _fast_minimisation():
            return first.equivalent(second)
    except RegexSyntaxError:
        return False


def equivalent(a: str, b: str, timeout_s: float = 5.0) -> bool | None:
    """Whether regexes ``a`` and ``b`` (NL-RX dialect) denote the same language.

    Returns True / False, or None ("undecided") if deciding took longer than ``timeout_s``
    seconds — callers must never count None as correct. A string that does not parse is
    not equivalent to anything (False). Identical strings are equivalent without compiling.
    """
    if a.strip() == b.strip():
        return True
    try:
        return _with_time_limit(_decide, (a, b), timeout_s)
    except TimeoutError:
        return None


def _language(text: str) -> str:
    try:
        return degenerate(text) or "regular"
    except RegexSyntaxError:
        return "invalid"


def target_language(text: str, timeout_s: float = 5.0) -> str:
    """``empty`` / ``all`` (degenerate), ``regular``, ``invalid`` (does not parse) or ``undecided`` (timed out)."""
    try:
        return _with_time_limit(_language, (text,), timeout_s)
    except TimeoutError:
        return "undecided"
