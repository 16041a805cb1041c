"""The run store: round trips, meta checks, and resuming killed searches without losing or repeating work."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from synthetic_problems import OBJECTIVES, zdt_evaluate, zdt_space

import hwnas
from hwnas.errors import ConfigError
from hwnas.model.search_space import Gene, SearchSpace
from hwnas.search_core.evaluator import Evaluation
from hwnas.search_core.run_store import FILENAME, RunStore

TESTS = Path(__file__).parent


def test_evaluations_round_trip_in_order(tmp_path: Path) -> None:
    space = zdt_space()
    a, b = space.sample(1), space.sample(2)
    stored = [
        Evaluation(
            a, {"f1": 0.5, "f2": 1.25}, 0.0, (1.0, 1.5, 1.25), "torch:cpu#abc", 1700000000.0, 0.5
        ),
        Evaluation(
            b,
            violation=math.inf,
            fingerprint="torch:cpu#abc",
            started_at=1700000001.0,
            error="RuntimeError: boom",
        ),
    ]
    with RunStore.in_directory(tmp_path) as store:
        for evaluation in stored:
            store.add(evaluation)
        store.add(stored[0])  # the same subnet on the same fingerprint is kept once
        assert store.count() == 2
    with RunStore(tmp_path / FILENAME) as store:
        loaded = store.evaluations(space)
    assert loaded == stored
    assert loaded[0].subnet.key == a.key and loaded[1].violation == math.inf and not loaded[1].ok


def test_strategy_state_is_replaced_after_each_tell(tmp_path: Path) -> None:
    with RunStore.in_directory(tmp_path) as store:
        assert store.load_state() is None
        store.save_state({"strategy": "x", "n": 1}, tells=1)
        store.save_state({"strategy": "x", "n": 2}, tells=2)
        assert store.load_state() == ({"strategy": "x", "n": 2}, 2)


def test_meta_mismatch_names_every_differing_field(tmp_path: Path) -> None:
    with RunStore.in_directory(tmp_path) as store:
        store.set_meta({"strategy": "nsga2", "seed": 0, "objectives": ["f1:min"]})
        store.check_meta({"strategy": "nsga2", "seed": 0})
        with pytest.raises(
            ConfigError, match="seed: stored 0, now 1; strategy: stored 'nsga2', now 'linas'"
        ):
            store.check_meta({"strategy": "linas", "seed": 1, "objectives": ["f1:min"]})


def test_stored_subnets_are_checked_against_the_space(tmp_path: Path) -> None:
    space = zdt_space()
    with RunStore.in_directory(tmp_path) as store:
        store.add(Evaluation(space.sample(0), {"f1": 0.0, "f2": 1.0}))
        changed = SearchSpace("zdt", [Gene(g.name, g.choices + (99,)) for g in space.genes])
        with pytest.raises(ConfigError, match="search space changed"):
            store.evaluations(changed)


def test_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_text("this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable run store"):
        RunStore.in_directory(tmp_path).count()


_CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    import hwnas
    from synthetic_problems import OBJECTIVES, zdt_evaluate, zdt_space

    calls, kill_after = {calls!r}, {kill_after}

    def evaluate(subnet):
        with open(calls, "a") as f:
            f.write(subnet.key + "\\n")
        with open(calls) as f:
            if sum(1 for _ in f) >= kill_after:
                os._exit(3)  # killed mid-batch: no cleanup, no exception handling
        return zdt_evaluate(subnet)

    hwnas.search(zdt_space(), evaluate, OBJECTIVES, strategy={strategy!r}, budget={budget}, batch_size=10,
                 out={out!r}, resume={resume}, seed=7)
    """
)


@pytest.mark.parametrize("strategy", ["nsga2", "linas"])
def test_killed_search_resumes_without_losing_or_repeating(tmp_path: Path, strategy: str) -> None:
    budget, kill_after = 60, 33  # killed in the middle of the fourth batch
    calls = tmp_path / "calls.txt"
    out = tmp_path / "run"

    def child(resume: bool, kill: int) -> int:
        code = _CHILD.format(
            tests=str(TESTS),
            calls=str(calls),
            kill_after=kill,
            strategy=strategy,
            budget=budget,
            out=str(out),
            resume=resume,
        )
        env = {**os.environ, "HWNAS_DISABLE_PLUGIN_AUTOLOAD": "1"}
        return subprocess.run([sys.executable, "-c", code], env=env, timeout=300).returncode

    assert child(resume=False, kill=kill_after) == 3
    with RunStore.in_directory(out) as store:
        assert (
            store.count() == kill_after - 1
        )  # the one being measured when killed is the only loss
    assert child(resume=True, kill=10**9) == 0

    called = calls.read_text().split()
    with RunStore.in_directory(out) as store:
        stored = [e.key for e in store.evaluations(zdt_space())]
    assert len(stored) == budget and len(set(stored)) == budget
    # Nothing measured twice; only the evaluation interrupted by the kill was redone.
    assert len(called) == budget + 1 and len(set(called)) == budget

    uninterrupted = hwnas.search(
        zdt_space(),
        zdt_evaluate,
        OBJECTIVES,
        strategy=strategy,
        budget=budget,
        batch_size=10,
        seed=7,
    )
    assert stored == [e.key for e in uninterrupted.evaluations]


def test_keyboard_interrupt_keeps_committed_evaluations(plugin_host, tmp_path: Path) -> None:
    seen: list[str] = []

    def evaluate(subnet):
        if len(seen) == 17:
            raise KeyboardInterrupt
        seen.append(subnet.key)
        return zdt_evaluate(subnet)

    with pytest.raises(KeyboardInterrupt):
        hwnas.search(
            zdt_space(), evaluate, OBJECTIVES, strategy="evolution", budget=40, out=tmp_path, seed=3
        )
    with RunStore.in_directory(tmp_path) as store:
        assert [e.key for e in store.evaluations(zdt_space())] == seen
    seen.append("sentinel")  # no more interrupts
    result = hwnas.search(
        zdt_space(),
        evaluate,
        OBJECTIVES,
        strategy="evolution",
        budget=40,
        out=tmp_path,
        seed=3,
        resume=True,
    )
    keys = [e.key for e in result.evaluations]
    assert len(keys) == len(set(keys)) == 40
    assert keys[:17] == seen[:17]
    assert len(seen) == 40 + 1  # 17 before, 23 after, plus the sentinel: nothing re-measured
