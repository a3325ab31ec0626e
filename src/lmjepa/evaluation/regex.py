"""Semantic (DFA-equivalence) match for NL-RX regexes, in the dk.brics.automaton dialect.

Grammar, lowest precedence first (as dk.brics.automaton's RegExp):

    union      := inter ('|' inter)*
    inter      := concat ('&' concat)*            # & is intersection
    concat     := repeat*                         # empty = the empty string
    repeat     := complement ('*' | '+' | '?' | '{n}' | '{n,}' | '{n,m}')*
    complement := '~' complement | atom           # ~ complements against ALL strings
    atom       := '(' union ')' | '[' ['^'] class ']' | '.' | '\\' char | char

So ``~a*`` is ``(~a)*`` and ``.*X&Y.*`` is ``(.*X)&(Y.*)``.

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

from greenery.charclass import DOT, Charclass
from greenery.fsm import EPSILON, Fsm, from_charclass


class RegexSyntaxError(ValueError):
    """The string is not a regex of the NL-RX dialect."""


class _Parser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def error(self, message: str) -> RegexSyntaxError:
        return RegexSyntaxError(f"{message} at position {self.pos} in {self.text!r}")

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def take(self) -> str:
        char = self.peek()
        if char is None:
            raise self.error("unexpected end")
        self.pos += 1
        return char

    def parse(self) -> Fsm:
        fsm = self.union()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()!r}")
        return fsm

    def union(self) -> Fsm:
        parts = [self.inter()]
        while self.peek() == "|":
            self.pos += 1
            parts.append(self.inter())
        return Fsm.union(*parts).reduce() if len(parts) > 1 else parts[0]

    def inter(self) -> Fsm:
        parts = [self.concat()]
        while self.peek() == "&":
            self.pos += 1
            parts.append(self.concat())
        return Fsm.intersection(*parts).reduce() if len(parts) > 1 else parts[0]

    def concat(self) -> Fsm:
        parts = []
        while self.peek() not in (None, "|", "&", ")"):
            parts.append(self.repeat())
        if not parts:
            return EPSILON
        return Fsm.concatenate(*parts).reduce() if len(parts) > 1 else parts[0]

    def repeat(self) -> Fsm:
        fsm = self.complement()
        while self.peek() in ("*", "+", "?", "{"):
            op = self.take()
            if op == "*":
                fsm = fsm.star()
            elif op == "+":
                fsm = fsm + fsm.star()
            elif op == "?":
                fsm = fsm | EPSILON
            else:
                low, high = self.bounds()
                fixed = fsm.times(low) if low else EPSILON
                if high is None:
                    fsm = fixed + fsm.star()
                else:
                    fsm = fixed + (fsm | EPSILON).times(high - low)
            fsm = fsm.reduce()
        return fsm

    def bounds(self) -> tuple[int, int | None]:
        low = self.number()
        if self.peek() == "}":
            self.pos += 1
            return low, low
        if self.take() != ",":
            raise self.error("expected ',' or '}' in a repeat")
        high = None if self.peek() == "}" else self.number()
        if self.take() != "}":
            raise self.error("expected '}'")
        if high is not None and high < low:
            raise self.error(f"repeat {{{low},{high}}} has max < min")
        return low, high

    def number(self) -> int:
        start = self.pos
        while (self.peek() or "").isdigit():
            self.pos += 1
        if start == self.pos:
            raise self.error("expected a number in a repeat")
        return int(self.text[start : self.pos])

    def complement(self) -> Fsm:
        if self.peek() == "~":
            self.pos += 1
            return self.complement().everythingbut().reduce()
        return self.atom()

    def atom(self) -> Fsm:
        char = self.take()
        if char == "(":
            fsm = self.union()
            if self.take() != ")":
                raise self.error("expected ')'")
            return fsm
        if char == "[":
            return from_charclass(self.charclass())
        if char == ".":
            return from_charclass(DOT)
        if char == "\\":
            return from_charclass(Charclass(self.take()))
        if char in ")*+?{}|&]":
            self.pos -= 1
            raise self.error(f"unexpected {char!r}")
        return from_charclass(Charclass(char))

    def charclass(self) -> Charclass:
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges: list[tuple[str, str]] = []
        while self.peek() != "]":
            low = self.take()
            if low == "\\":
                low = self.take()
            high = low
            if self.peek() == "-" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] != "]":
                self.pos += 1
                high = self.take()
                if high == "\\":
                    high = self.take()
                if high < low:
                    raise self.error(f"bad range {low}-{high}")
            ranges.append((low, high))
        self.pos += 1  # ']'
        return Charclass(tuple(ranges), negated=negated)


@functools.lru_cache(maxsize=8192)
def compile_regex(text: str) -> Fsm:
    """Minimal DFA of an NL-RX regex. Raises RegexSyntaxError if ``text`` does not parse."""
    return _Parser(text.strip()).parse().reduce()


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


def _decide(a: str, b: str) -> bool:
    try:
        # Cheap, sound shortcut: a fixed-length pattern (typically a prose answer, whose automaton
        # takes seconds to build) cannot equal a regex whose shortest string has another length.
        for fixed, other in ((a, b), (b, a)):
            length = fixed_length(fixed)
            if length is not None and shortest_length(compile_regex(other)) != length:
                return False
        return compile_regex(a).equivalent(compile_regex(b))
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
