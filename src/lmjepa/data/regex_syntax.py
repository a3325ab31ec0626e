"""Parse trees of NL-RX regexes in the dk.brics.automaton dialect (``RegExp``'s recursive descent).

Grammar, lowest precedence first, as dk.brics parses it::

    union      := inter ('|' union)?
    inter      := concat ('&' inter)?
    concat     := repeat concat?                  # stops before ')' and '|' and '&'
    repeat     := complement ('?' | '*' | '+' | '{n}' | '{n,}' | '{n,m}')*
    complement := '~' complement | class
    class      := '[' ['^'] (char ['-' char])+ ']' | simple
    simple     := '.' | '()' | '(' union ')' | char
    char       := ['\\'] any character

So every alternative needs at least one character: ``a|``, ``a&``, ``(a|)`` and the empty regex are
errors ("unexpected end"), while a character that starts no construct is a literal — ``(|a)`` is the
group of the literal string ``|a``, and ``*a`` the literal ``*a``, exactly as in dk.brics. ``{n,m}`` with
m < n denotes the empty language there (``Automaton.repeat``), and here.

Nodes are tuples: ``("char", c)``, ``("class", ((low, high), ...), negated)``, ``("dot",)``, ``("empty",)``
(the empty string), ``("union" | "inter" | "concat", child, child, ...)``, ``("repeat", child, low, high)``
(``*`` = (0, None), ``+`` = (1, None), ``?`` = (0, 1)) with its source spelling kept as ``op``, and
``("not", child)``. ``lmjepa.evaluation.regex`` compiles them into automata; ``depth`` and
``compositions`` describe them (the OOD splits of ``lmjepa build-data nlrx-splits``).
"""

from __future__ import annotations

from collections.abc import Iterator


class RegexSyntaxError(ValueError):
    """The string is not a regex of the NL-RX dialect."""


class _Parser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def error(self, message: str) -> RegexSyntaxError:
        return RegexSyntaxError(f"{message} at position {self.pos} in {self.text!r}")

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def match(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def next(self) -> str:
        char = self.peek()
        if char is None:
            raise self.error("unexpected end")
        self.pos += 1
        return char

    def parse(self) -> tuple:
        node = self.union()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()!r}")
        return node

    def _chain(self, kind: str, first: tuple, rest: tuple | None) -> tuple:
        if rest is None:
            return first
        return (kind, first, *(rest[1:] if rest[0] == kind else (rest,)))

    def union(self) -> tuple:
        first = self.inter()
        return self._chain("union", first, self.union() if self.match("|") else None)

    def inter(self) -> tuple:
        first = self.concat()
        return self._chain("inter", first, self.inter() if self.match("&") else None)

    def concat(self) -> tuple:
        first = self.repeat()
        more = self.peek() is not None and self.peek() not in ")|&"
        return self._chain("concat", first, self.concat() if more else None)

    def repeat(self) -> tuple:
        node = self.complement()
        while self.peek() in ("?", "*", "+", "{"):
            op = self.next()
            if op == "{":
                start = self.pos
                low = self.number()
                high = low
                if self.match(","):
                    high = self.number() if (self.peek() or "").isdigit() else None
                if not self.match("}"):
                    raise self.error("expected '}'")
                node = ("repeat", node, low, high, self.text[start - 1 : self.pos])
            else:
                low, high = {"?": (0, 1), "*": (0, None), "+": (1, None)}[op]
                node = ("repeat", node, low, high, op)
        return node

    def number(self) -> int:
        start = self.pos
        while (self.peek() or "").isdigit():
            self.pos += 1
        if start == self.pos:
            raise self.error("expected a number in a repeat")
        return int(self.text[start : self.pos])

    def complement(self) -> tuple:
        if self.match("~"):
            return ("not", self.complement())
        if self.match("["):
            negated = self.match("^")
            ranges = [self.class_range()]
            while self.peek() is not None and self.peek() != "]":
                ranges.append(self.class_range())
            if not self.match("]"):
                raise self.error("expected ']'")
            return ("class", tuple(ranges), negated)
        return self.simple()

    def class_range(self) -> tuple[str, str]:
        low = self.char()
        if not self.match("-"):
            return low, low
        high = self.char()
        if high < low:
            raise self.error(f"bad range {low}-{high}")
        return low, high

    def simple(self) -> tuple:
        if self.match("."):
            return ("dot",)
        if self.match("("):
            if self.match(")"):
                return ("empty",)
            node = self.union()
            if not self.match(")"):
                raise self.error("expected ')'")
            return node
        return ("char", self.char())

    def char(self) -> str:
        self.match("\\")
        return self.next()


def parse_regex(text: str) -> tuple:
    """The parse tree of ``text`` (stripped). Raises RegexSyntaxError where dk.brics raises."""
    return _Parser(text.strip()).parse()


def _is_word(node: tuple) -> bool:
    return node[0] == "char" or (node[0] == "concat" and all(child[0] == "char" for child in node[1:]))


def depth(node: tuple) -> int:
    """Height of the parse tree, a run of literal characters (a word) counting as one leaf: ``dog`` → 0,
    ``(dog)*`` → 1, ``~((dog.*){3,})`` → 3 (``~`` over ``{3,}`` over the concatenation)."""
    if _is_word(node) or node[0] in ("class", "dot", "empty"):
        return 0
    children = node[1:2] if node[0] in ("repeat", "not") else node[1:]
    return 1 + max(depth(child) for child in children)


def operator(node: tuple) -> str | None:
    """The operator a node applies: ``|``, ``&``, ``~``, ``*``, ``+``, ``?``, ``{n}``, ``{n,}``, ``{n,m}``;
    None for leaves and concatenations."""
    kind = node[0]
    if kind in ("union", "inter", "not"):
        return {"union": "|", "inter": "&", "not": "~"}[kind]
    if kind == "repeat":
        spelled = node[4]
        if spelled in ("*", "+", "?"):
            return spelled
        return "{n,}" if node[3] is None else ("{n}" if node[2] == node[3] else "{n,m}")
    return None


def _walk(node: tuple, above: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    op = operator(node)
    if op is not None:
        yield from ((outer, op) for outer in above)
        above = above + (op,) if op not in above else above
    if node[0] in ("class", "dot", "empty", "char"):
        return
    for child in (node[1:2] if node[0] in ("repeat", "not") else node[1:]):
        yield from _walk(child, above)


def compositions(node: tuple) -> set[tuple[str, str]]:
    """Every (outer, inner) pair of operators where an ``inner`` node lies anywhere below an ``outer`` node
    (``~((a.*)&(b.*))`` → {("~", "&"), ("~", "*"), ("&", "*")}). Concatenation is not an operator here."""
    return set(_walk(node, ()))
