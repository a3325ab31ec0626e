"""NL-RX regex equivalence (dk.brics dialect) on hand-checked pairs, and the scoring rules."""

import pytest
from concurrent.futures import ThreadPoolExecutor

from lmjepa.data.jsonl import Example
from lmjepa.evaluation.evaluate import score
from lmjepa.evaluation.regex import RegexSyntaxError, compile_regex, degenerate, equivalent, target_language
from lmjepa.evaluation.tasks import get_task

NLRX = get_task("nlrx-synth")


def _ex(references):
    return [Example(text="q", code=r) for r in references]

# (a, b, equivalent?) — each checked by hand against the dk.brics semantics
PAIRS = [
    ("a|b", "[ab]", True),
    ("[a-c]", "a|b|c", True),
    ("(dog)+", "dog(dog)*", True),
    ("a{3,}", "aaaa*", True),
    ("a{2}", "aa", True),
    ("a{1,3}", "a|aa|aaa", True),
    ("a+", "a*", False),  # the empty string
    ("[0-9]&[5-9]", "[5-9]", True),  # & is intersection
    ("[a-z]&[A-Z]", "~(.*)", True),  # disjoint classes: the empty language
    (".*dog.*&.*truck.*", "(.*dog.*truck.*)|(.*truck.*dog.*)", True),
    ("~a*", "(~a)*", True),  # prefix ~ binds tighter than *
    ("~(a*)", "(~a)*", False),
    ("~a", "[^a]", False),  # ~ complements against all strings, not one character
    ("~(~(dog))", "dog", True),
    (".*X&Y.*", "(.*X)&(Y.*)", True),  # & is looser than concatenation
    ("a|b&c", "a|(b&c)", True),  # | is looser than &
    ("\\b", "b", True),  # dk.brics reads \b as the letter b
    ("\\.", ".", False),  # an escaped dot is a literal dot
    ("ab", "ba", False),
]


@pytest.mark.parametrize("a, b, expected", PAIRS)
def test_hand_checked_pairs(a, b, expected):
    assert equivalent(a, b) is expected
    assert equivalent(b, a) is expected


def test_membership_of_compiled_dialect():
    fsm = compile_regex("(.*[0-9].*)&(~(.*dog.*))")
    assert fsm.accepts("a1") and not fsm.accepts("dog1") and not fsm.accepts("abc")
    assert compile_regex("[^a-c]").accepts("d") and not compile_regex("[^a-c]").accepts("b")


@pytest.mark.parametrize("text", ["a|", "a&", "", "(a|)", "a(", "(a|b", "[a", "a{2", "a{,3}"])
def test_what_dk_brics_rejects_is_a_syntax_error(text):
    with pytest.raises(RegexSyntaxError):
        compile_regex(text)


def test_dk_brics_literals_and_empty_repeat():
    """dk.brics reads a character that starts no construct as a literal, and {n,m} with m < n as the empty
    language (``Automaton.repeat``); ``()`` is the empty string."""
    assert compile_regex("(|a)").accepts("|a") and equivalent("(|a)", "\\|a") is True
    assert compile_regex("*a").accepts("*a") and compile_regex("a||b").accepts("|b")
    assert degenerate("a{3,2}") == "empty" and compile_regex("()").accepts("")


def test_unparsable_is_never_equivalent():
    with pytest.raises(RegexSyntaxError):
        compile_regex("(a|b")
    assert equivalent("(a|b", "a|b") is False
    assert equivalent("a{3", "aaa") is False


def test_degenerate_targets():
    assert degenerate("\\b([A-Z])&([AEIOUaeiou])\\b") == "empty"  # a real NL-RX target under the \b=b reading
    assert degenerate(".*(.*)(([AEIOUaeiou])*).*") == "all"
    assert degenerate("dog.*") is None


def test_target_language():
    assert target_language("[a-z]&[A-Z]") == "empty"
    assert target_language("~(dog)|dog") == "all"
    assert target_language("dog.*") == "regular"
    assert target_language("(dog") == "invalid"
    assert target_language("((dog)|(truck.*[0-9].*)){9,}&~(.*[A-Z].*){6,}", timeout_s=0.01) == "undecided"


def test_time_limit_also_works_off_the_main_thread():
    heavy = "((dog)|(truck.*[0-9].*)){8,}&~(.*[A-Z].*)"
    slow = f"({heavy})((dog)|(truck.*[0-9].*))*"  # neither a short counterexample nor a small product
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(equivalent, heavy, slow, 0.05).result() is None
        assert pool.submit(equivalent, "[0-9]&[5-9]", "[5-9]", 5.0).result() is True
        assert pool.submit(equivalent, "a+", "a*", 5.0).result() is False


def test_timeout_is_undecided_never_correct():
    heavy = "((dog)|(truck.*[0-9].*)){8,}&~(.*[A-Z].*)"
    assert equivalent(heavy, f"({heavy})((dog)|(truck.*[0-9].*))*", timeout_s=0.01) is None
    metrics, rows = score(["x"], _ex(["y"]), NLRX, regex_timeout_s=5.0, progress=False)
    assert metrics["semantic_match"] == 0.0 and rows[0]["semantic_match"] is False


def test_score_counts():
    predictions = ["a|b", "[ab]", "c", "(oops"]
    references = ["a|b", "a|b", "d", "x"]
    metrics, rows = score(predictions, _ex(references), NLRX, progress=False)
    assert metrics["n"] == 4
    assert metrics["exact_match"] == pytest.approx(25.0)
    assert metrics["semantic_match"] == pytest.approx(50.0)
    assert metrics["undecided"] == 0
    assert [r["semantic_match"] for r in rows] == [True, True, False, False]
    with pytest.raises(ValueError, match="predictions for"):
        score(["a"], [], NLRX)


FIXED_LENGTH_PAIRS = [  # (fixed-length pattern, regex): the shortcut's side, checked against the full automata
    ("(a)(b).", "ab.", True),
    ("a.c", "a[a-z]c", False),
    ("dog", "dog|dogs", False),  # same shortest length: decided by the automata
    ("()", "a*", False),
    ("()", "(a?)&(b?)", True),
    ("abc", "~(.*)", False),  # empty language: no shortest string
    ("lines with dog", ".*dog.*", False),
    ("x", "[x]", True),
    ("(ab)c", "abc{1,2}", False),
]


@pytest.mark.parametrize("fixed, other, expected", FIXED_LENGTH_PAIRS)
def test_fixed_length_shortcut_agrees_with_the_automata(fixed, other, expected):
    from lmjepa.evaluation.regex import _decide

    assert compile_regex(fixed).equivalent(compile_regex(other)) is expected  # independent: full DFA comparison
    assert _decide(fixed, other) is expected and _decide(other, fixed) is expected


def test_fixed_length_and_shortest_length():
    from lmjepa.evaluation.regex import fixed_length, shortest_length

    assert fixed_length(" The answer is (x). ") == 16 and fixed_length("a()b") == 2
    assert fixed_length("a*") is None and fixed_length("a)(") is None and fixed_length("[ab]") is None
    assert shortest_length(compile_regex("(dogs|cat)x*")) == 3 and shortest_length(compile_regex("a*")) == 0
    assert shortest_length(compile_regex("[a-z]&[0-9]")) is None


def test_prose_prediction_is_rejected_without_building_its_automaton(monkeypatch):
    from lmjepa.evaluation import regex

    compiled = []
    real = regex.compile_regex
    monkeypatch.setattr(regex, "compile_regex", lambda text: compiled.append(text) or real(text))
    prose = "The regular expression for lines with the word dog is as follows."
    assert regex._decide(prose, ".*dog.*") is False
    assert compiled == [".*dog.*"]


@pytest.mark.parametrize("text", ["(.*([A-Z])|(dog)|(truck).*){3,}", "~((dog.*[0-9].*){3,})", "(a|b)*abb",
                                  "([AEIOUaeiou])&(.*[a-z].*)", "((dog)|(truck)){2,4}", "a{3,2}"])
def test_moore_minimisation_equals_greenery_reduce(text):
    """Independent: greenery's own Brzozowski reduce on the same unminimised automaton."""
    from greenery.fsm import Fsm

    from lmjepa.data.regex_syntax import parse_regex
    from lmjepa.evaluation.regex import _to_fsm, minimise

    minimal = _to_fsm(parse_regex(text))  # built with greenery's reduce (outside the fast block): minimal
    # the same language with every state doubled (each step flips a parity bit): not minimal
    raw = Fsm(alphabet=minimal.alphabet, states={(q, b) for q in minimal.states for b in (0, 1)},
              initial=(minimal.initial, 0), finals={(q, b) for q in minimal.finals for b in (0, 1)},
              map={(q, b): {a: (t, 1 - b) for a, t in minimal.map[q].items()}
                   for q in minimal.states for b in (0, 1)})
    ours, theirs = minimise(raw), Fsm.reduce(raw)
    assert len(ours.states) == len(theirs.states) == len(minimal.states) < len(raw.states)
    assert ours.equivalent(theirs) and ours.equivalent(minimal)
    assert Fsm.reduce is not minimise  # the fast block restored greenery's method
    for probe in ["", "dog", "Adogtruck", "AAA", "dogdogdog1", "aabb", "abb", "dogtruck"]:
        assert ours.accepts(probe) == theirs.accepts(probe)


# --- the lazy derivative search (issue 32) ----------------------------------------------------------------

def test_derivative_search_agrees_with_greenery_automata_on_real_pairs():
    """Independent computation: greenery's automata (the search switched off) on NL-RX targets paired with a
    parenthesised copy, a perturbed copy and another target."""
    import gzip
    import json
    import random

    from lmjepa.data.tasks import PACKAGED
    from lmjepa.evaluation import regex
    from lmjepa.evaluation.regex_search import search

    with gzip.open(PACKAGED / "synth_test.jsonl.gz", "rt", encoding="utf-8") as handle:
        targets = [json.loads(line)["messages"][-1]["content"] for _, line in zip(range(40), handle)]
    rng = random.Random(0)
    pairs = ([(t, f"({t})") for t in targets] + [(t, t.replace("dog", "truck", 1) + "a") for t in targets]
             + [(rng.choice(targets), rng.choice(targets)) for _ in range(40)])
    saved, regex.SEARCH_PAIRS = regex.SEARCH_PAIRS, 0
    try:
        stock = [regex._decide(a, b) for a, b in pairs]
    finally:
        regex.SEARCH_PAIRS = saved
    decided = [search(a, b) for a, b in pairs]
    assert all(answer is not None for answer, _ in decided)
    assert [answer for answer, _ in decided] == stock
    assert True in stock and False in stock
    for (a, b), (answer, word) in zip(pairs, decided):
        if answer is False:  # the counterexample is in exactly one language (checked on the automata)
            assert compile_regex(a).accepts(word) != compile_regex(b).accepts(word)


def test_the_last_undecided_pair_is_decided_at_once():
    import time

    from lmjepa.evaluation.regex_search import search

    start = time.perf_counter()
    assert search("(([A-Za-z].*dog.*)|(truck)){7,}", "[A-Z]") == (False, "A")
    assert equivalent("(([A-Za-z].*dog.*)|(truck)){7,}", "[A-Z]") is False
    assert search("((a)|(b)){3}((a)|(b))*", "((b)|(a)){3,}") == (True, None)  # unrolled and reordered
    assert search("~(a*)", "(a*)") == (False, "")  # the empty string tells a language from its complement
    assert search("a&b", "(a)&(a)b") == (True, None)  # both empty
    assert time.perf_counter() - start < 5
