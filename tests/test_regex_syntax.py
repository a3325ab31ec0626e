"""Parse trees of the dk.brics dialect: shape, depth and operator compositions, checked by hand."""

import pytest

from lmjepa.data.regex_syntax import RegexSyntaxError, compositions, depth, operator, parse_regex


def test_parse_tree_shapes_by_hand():
    assert parse_regex("dog") == ("concat", ("char", "d"), ("char", "o"), ("char", "g"))
    assert parse_regex("a|b|c") == ("union", ("char", "a"), ("char", "b"), ("char", "c"))
    assert parse_regex("~a*") == ("repeat", ("not", ("char", "a")), 0, None, "*")  # ~ binds tighter
    assert parse_regex(".*X&Y.*")[0] == "inter"  # & binds looser than concatenation
    assert parse_regex("[^a-c]") == ("class", (("a", "c"),), True)
    assert parse_regex("a{2,}") == ("repeat", ("char", "a"), 2, None, "{2,}")
    assert parse_regex("()") == ("empty",)
    assert parse_regex("(|a)") == ("concat", ("char", "|"), ("char", "a"))


@pytest.mark.parametrize("text, expected", [
    ("dog", 0), ("[0-9]", 0), ("(dog)*", 1), ("dog.*", 2), ("~((dog.*){3,})", 4),
    ("(.*dog.*)&(.*truck.*)", 3), ("((dog)|(truck))+", 2),
])
def test_depth_counts_words_as_leaves(text, expected):
    # by hand: "dog.*" = concat(word, star(dot)) → concat 1 + star 1 = 2; ~((dog.*){3,}) = ~ → {3,} → concat → *
    assert depth(parse_regex(text)) == expected


def test_operators_and_compositions_by_hand():
    assert [operator(parse_regex(t)) for t in ("a|b", "a&b", "~a", "a*", "a+", "a?", "a{2}", "a{2,}", "a{2,3}")] == [
        "|", "&", "~", "*", "+", "?", "{n}", "{n,}", "{n,m}"]
    assert compositions(parse_regex("~((a.*)&(b.*))")) == {("~", "&"), ("~", "*"), ("&", "*")}
    assert compositions(parse_regex("(a|b){3,}")) == {("{n,}", "|")}
    assert compositions(parse_regex("dog")) == set()
    assert compositions(parse_regex("((a)*)*")) == {("*", "*")}


def test_errors_name_the_position():
    with pytest.raises(RegexSyntaxError, match="unexpected end at position 2 in 'a|'"):
        parse_regex("a|")
