"""make_labels: every input form gives the same normalised label set."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwconsole.labels import DuplicateLabelError, make_labels

_NAMES = st.sampled_from(["__name__", "a", "b", "job", "instance", "Z", "_x", "é"])
_VALUES = st.sampled_from(["", "1", "x", "é", "a b"])


@given(st.dictionaries(_NAMES, _VALUES, max_size=8))
def test_dict_mapping_and_pairs_give_one_label_set(labels: dict[str, str]) -> None:
    expected = tuple(sorted((n, v) for n, v in labels.items() if v))
    assert make_labels(labels) == expected
    assert make_labels(MappingProxyType(labels)) == expected
    assert make_labels(list(labels.items())) == expected
    assert all(type(pair) is tuple for pair in make_labels(labels))


def test_empty_values_are_dropped_and_repeats_refused() -> None:
    assert make_labels({"b": "1", "a": "", "c": "x"}) == (("b", "1"), ("c", "x"))
    assert make_labels([("a", ""), ("a", "1")]) == (("a", "1"),)
    with pytest.raises(DuplicateLabelError, match="'a'"):
        make_labels([("a", "1"), ("a", "2")])
