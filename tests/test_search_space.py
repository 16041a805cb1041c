"""Property tests of SearchSpace: canonical keys, encode/decode, JSON, errors, and size against brute force."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwnas.errors import ConfigError
from hwnas.model.search_space import Gene, SearchSpace

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_values = st.one_of(
    st.integers(min_value=-5, max_value=50),
    st.sampled_from([0.25, 0.5, 0.75, 1.5]),
    st.sampled_from(["relu", "gelu", "h_swish", "none"]),
)


@st.composite
def spaces(draw: st.DrawFn, max_genes: int = 5) -> SearchSpace:
    """Small spaces: a few plain genes, some genes conditional on an earlier plain gene."""
    count = draw(st.integers(min_value=1, max_value=max_genes))
    genes: list[Gene] = []
    for index in range(count):
        choices = tuple(
            draw(st.lists(_values, min_size=1, max_size=4, unique_by=lambda v: (type(v), v)))
        )
        # 1 and 1.0 compare equal; keep each gene's choices of one kind so they stay distinct
        if len({c for c in choices}) != len(choices):
            choices = tuple(dict.fromkeys(choices))
        plain = [g for g in genes if g.active_if is None]
        condition = None
        if plain and draw(st.booleans()):
            parent = draw(st.sampled_from(plain))
            allowed = tuple(
                draw(st.lists(st.sampled_from(parent.choices), min_size=1, unique=True))
            )
            condition = (parent.name, allowed)
        genes.append(Gene(f"g{index}", choices, condition))
    return SearchSpace(draw(st.sampled_from(["alpha", "beta"])), genes)


def _all_raw_configs(space: SearchSpace) -> list[dict]:
    """Every assignment of every gene, active or not (what a careless user might write)."""
    names = [g.name for g in space.genes]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(g.choices for g in space.genes))
    ]


@SETTINGS
@given(spaces(), st.randoms(use_true_random=False))
def test_equivalent_configs_share_a_key_and_different_ones_do_not(space, rnd):
    by_key: dict[str, tuple] = {}
    for raw in _all_raw_configs(space)[:400]:
        shuffled = dict(rnd.sample(list(raw.items()), len(raw)))
        subnet = space.subnet(raw)
        assert space.subnet(shuffled).key == subnet.key
        assert space.subnet(subnet.to_dict()) == subnet
        # the same network always gets the same key; a different network never does
        previous = by_key.setdefault(subnet.key, subnet.config)
        assert previous == subnet.config
    # inactive genes are dropped from the canonical form
    for raw in _all_raw_configs(space)[:50]:
        subnet = space.subnet(raw)
        for gene in space.genes:
            assert (gene.name in subnet.to_dict()) == space.is_active(gene, raw)


@SETTINGS
@given(spaces(), st.integers(min_value=0, max_value=2**32 - 1))
def test_encode_decode_round_trip(space, seed):
    subnet = space.sample(seed)
    vector = space.encode(subnet)
    assert vector.shape == (len(space),)
    assert np.all(vector >= 0) and np.all(vector <= space.upper_bounds)
    decoded = space.decode(vector)
    assert decoded == subnet and decoded.key == subnet.key
    # features have one column per feature name, values within [0, 1]
    features = space.features(subnet)
    assert features.shape == (len(space.feature_names()),)
    assert np.all((features >= 0) & (features <= 1))


@SETTINGS
@given(space=spaces(), seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_json_round_trip(tmp_path_factory, space, seed):
    subnet = space.sample(seed)
    data = json.loads(subnet.to_json())
    assert data["space"] == space.name
    assert space.subnet(data["config"]) == subnet
    path = tmp_path_factory.mktemp("subnet") / "subnet.json"
    path.write_text(subnet.to_json())
    assert space.load_subnet(path).key == subnet.key
    path.write_text(json.dumps(data["config"]))  # a bare config is accepted too
    assert space.load_subnet(path) == subnet


@SETTINGS
@given(spaces(max_genes=4))
def test_size_matches_brute_force_count(space):
    distinct = {space.subnet(raw).key for raw in _all_raw_configs(space)}
    assert space.size() == len(distinct)


@SETTINGS
@given(spaces(), st.integers(min_value=0, max_value=2**32 - 1))
def test_bad_value_error_names_the_gene_and_its_allowed_values(space, seed):
    subnet = space.sample(seed)
    gene = space.gene(subnet.config[0][0])
    config = subnet.to_dict()
    config[gene.name] = "certainly-not-a-choice"
    with pytest.raises(ConfigError) as info:
        space.subnet(config)
    text = str(info.value)
    assert repr(gene.name) in text
    assert str(list(gene.choices)) in text


def test_unknown_and_missing_genes_are_named():
    space = SearchSpace("s", [Gene("depth", (2, 3)), Gene("width", (8, 16))])
    with pytest.raises(ConfigError, match="unknown gene.*'colour'"):
        space.subnet({"depth": 2, "width": 8, "colour": "red"})
    with pytest.raises(ConfigError, match="missing gene 'width'") as info:
        space.subnet({"depth": 2})
    assert "[8, 16]" in str(info.value)
    with pytest.raises(ConfigError, match="expected a JSON object"):
        space.subnet([("depth", 2)])  # type: ignore[arg-type]


def test_bad_subnet_files_say_what_is_wrong(tmp_path):
    space = SearchSpace("s", [Gene("depth", (2, 3))])
    with pytest.raises(ConfigError, match="does not exist"):
        space.load_subnet(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        space.load_subnet(broken)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"space": "elsewhere", "config": {"depth": 2}}))
    with pytest.raises(ConfigError, match="'elsewhere'"):
        space.load_subnet(other)


def test_json_numbers_match_float_choices():
    space = SearchSpace("s", [Gene("ratio", (0.5, 1.0, 2.0))])
    assert space.subnet({"ratio": 1})["ratio"] == 1.0
    assert space.subnet({"ratio": 1}).key == space.subnet({"ratio": 1.0}).key


def test_invalid_spaces_are_rejected():
    with pytest.raises(ConfigError, match="no choices"):
        Gene("g", ())
    with pytest.raises(ConfigError, match="repeats"):
        Gene("g", (1, 1))
    with pytest.raises(ConfigError, match="defined twice"):
        SearchSpace("s", [Gene("a", (1,)), Gene("a", (2,))])
    with pytest.raises(ConfigError, match="must be defined before"):
        SearchSpace("s", [Gene("b", (1,), ("a", (1,))), Gene("a", (1,))])
    with pytest.raises(ConfigError, match="not choices"):
        SearchSpace("s", [Gene("a", (1, 2)), Gene("b", (1,), ("a", (3,)))])


def test_keys_differ_between_spaces_and_are_stable_across_processes():
    genes = [Gene("depth", (2, 3, 4)), Gene("k", (3, 5), ("depth", (3, 4)))]
    key = SearchSpace("s", genes).subnet({"depth": 3, "k": 5}).key
    assert SearchSpace("t", genes).subnet({"depth": 3, "k": 5}).key != key
    code = (
        "from hwnas.model.search_space import Gene, SearchSpace\n"
        "genes = [Gene('depth', (2, 3, 4)), Gene('k', (3, 5), ('depth', (3, 4)))]\n"
        "print(SearchSpace('s', genes).subnet({'depth': 3, 'k': 5}).key)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == key


def test_decode_clips_out_of_range_indices_and_checks_length():
    space = SearchSpace("s", [Gene("a", (1, 2, 3)), Gene("b", ("x", "y"))])
    assert space.decode([7, -3]).to_dict() == {"a": 3, "b": "x"}
    with pytest.raises(ConfigError, match="2 genes"):
        space.decode([0])


def test_smallest_and_largest_take_numeric_extremes():
    space = SearchSpace(
        "s",
        [
            Gene("depth", (3, 2, 4)),
            Gene("k", (5, 3), ("depth", (4,))),
            Gene("act", ("relu", "gelu")),
        ],
    )
    assert space.smallest().to_dict() == {"depth": 2, "act": "relu"}
    assert space.largest().to_dict() == {"depth": 4, "k": 5, "act": "relu"}
