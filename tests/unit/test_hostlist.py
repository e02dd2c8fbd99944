from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conductor.domain.errors import SpecError
from conductor.domain.hostlist import compress_hostlist, expand_hostlist, hostlist_sort_key


@pytest.mark.parametrize(
    ("names", "text"),
    [
        (["node1", "node2", "node3", "node5"], "node[1-3,5]"),
        (["node3", "node1", "node2", "node2"], "node[1-3]"),
        (["node01", "node02", "node03"], "node[01-03]"),
        (["node9", "node10", "node11"], "node[9-11]"),
        (["node09", "node10"], "node[09-10]"),
        (["node1", "node01"], "node[1,01]"),
        (["node08", "node9"], "node[08,9]"),
        (["n1"], "n1"),
        (["b", "a"], "a,b"),
        (["login", "node1", "node2"], "login,node[1-2]"),
        (["a1", "b1"], "a1,b1"),
        (["node", "node1", "node2"], "node,node[1-2]"),
        (["rack1-n1", "rack1-n2", "rack2-n1"], "rack1-n[1-2],rack2-n1"),
        (["node2", "node10"], "node[2,10]"),
        ([], ""),
    ],
)
def test_compress(names: list[str], text: str) -> None:
    assert compress_hostlist(names) == text


@pytest.mark.parametrize("bad", ["", "a,b", "a[1]", "a b", "a]", "tab\there"])
def test_compress_rejects_bad_names(bad: str) -> None:
    with pytest.raises(SpecError) as info:
        compress_hostlist(["ok1", bad])
    assert info.value.field == "nodes"
    assert "invalid node name" in info.value.message
    with pytest.raises(SpecError) as info:
        compress_hostlist([bad], field="node_list")
    assert str(info.value).startswith("node_list: ")


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("node[01-03],other", ["node01", "node02", "node03", "other"]),
        ("node[1-3,5]", ["node1", "node2", "node3", "node5"]),
        ("n[8-10]", ["n8", "n9", "n10"]),
        ("n[08-10]", ["n08", "n09", "n10"]),
        ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
        ("[1-2]x", ["1x", "2x"]),
        ("single", ["single"]),
        (" a , b ", ["a", "b"]),
        ("", []),
        ("n[3]", ["n3"]),
        ("b,a,b", ["b", "a", "b"]),
    ],
)
def test_expand(expr: str, names: list[str]) -> None:
    assert expand_hostlist(expr) == names


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("n[1-", "'[' without ']'"),
        ("n]1", "']' without '['"),
        ("n[[1]]", "brackets cannot nest"),
        ("n[]", "empty brackets"),
        ("n[a-b]", "bad range 'a-b'"),
        ("n[1-2-3]", "bad range '1-2-3'"),
        ("n[1,]", "bad range ''"),
        ("n[3-1]", "range '3-1' ends before it starts"),
        ("a,,b", "empty name between commas"),
        ("a,", "empty name between commas"),
        ("my node", "cannot contain spaces"),
        ("n[0-999999999]", "more than the maximum of 100000 hosts"),
        # Counted before each range is built: these took seconds and gigabytes.
        ("vm[" + ",".join(["1-999999"] * 20) + "]", "more than the maximum of 100000 hosts"),
        ("a[1-1000]-b[1-1000]", "more than the maximum of 100000 hosts"),
        ("n" + "x[1-99999]" * 20, "more than the maximum of 100000 hosts"),
        ("vm[1-" + "9" * 5000 + "]", "at most 18 digits"),
        ("n[0-999],m[0-99999]", "more than the maximum of 100000 hosts"),
    ],
)
def test_expand_errors(expr: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        expand_hostlist(expr)
    assert info.value.field == "nodes"
    assert fragment in info.value.message


def test_expand_custom_limit_and_field() -> None:
    with pytest.raises(SpecError) as info:
        expand_hostlist("n[1-11]", max_hosts=10, field="nodelist")
    assert str(info.value) == (
        "nodelist: invalid host list 'n[1-11]': more than the maximum of 10 hosts"
    )


def test_sort_key_is_numeric() -> None:
    assert sorted(["node10", "node2", "node1", "login"], key=hostlist_sort_key) == [
        "login",
        "node1",
        "node2",
        "node10",
    ]


_prefixes = st.sampled_from(["node", "n", "gpu-", "rack1-n", "x", "login", ""])


@st.composite
def _host_names(draw: st.DrawFn) -> str:
    prefix = draw(_prefixes)
    if draw(st.booleans()) or not prefix:
        number = draw(st.integers(min_value=0, max_value=120))
        width = draw(st.integers(min_value=1, max_value=4))
        return prefix + str(number).zfill(width)
    return prefix


@given(st.lists(_host_names(), max_size=60))
def test_expand_of_compress_is_sorted_unique(names: list[str]) -> None:
    compressed = compress_hostlist(names)
    assert expand_hostlist(compressed) == sorted(set(names), key=hostlist_sort_key)
    assert compress_hostlist(expand_hostlist(compressed)) == compressed


@given(st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=80))
def test_numeric_runs_use_ranges(numbers: list[int]) -> None:
    names = [f"node{n}" for n in numbers]
    compressed = compress_hostlist(names)
    unique = sorted(set(numbers))
    runs = 1 + sum(1 for a, b in itertools.pairwise(unique) if b != a + 1)
    if len(unique) == 1:
        assert compressed == f"node{unique[0]}"
    else:
        assert compressed.startswith("node[") and compressed.endswith("]")
        assert compressed.count(",") == runs - 1


@given(st.text(max_size=20))
def test_expand_only_raises_spec_error(text: str) -> None:
    try:
        expand_hostlist(text)
    except SpecError as err:
        assert err.field == "nodes"
