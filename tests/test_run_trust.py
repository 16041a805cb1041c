"""A run directory is untrusted input: no code runs from it, a second writer is refused, a copy of
search.sqlite alone holds every evaluation, and a failing strategy loses nothing (issue 12)."""

from __future__ import annotations

import pickle
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_hwnas
from synthetic_problems import OBJECTIVES, zdt_evaluate, zdt_space

import hwnas
from hwnas.errors import ConfigError, StrategyError
from hwnas.search_core.run_store import FILENAME, RunStore
from hwnas.search_core.state_codec import decode_state, encode_state


class _Marker:
    """Unpickling this object creates a file: proof that code from the store ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _plant_pickled_state(run: Path, marker: Path, *, with_evaluations: bool) -> None:
    """A real run whose saved strategy state was replaced by a crafted pickle."""
    hwnas.search(zdt_space(), zdt_evaluate, OBJECTIVES, strategy="nsga2", budget=2, out=run)
    db = sqlite3.connect(run / FILENAME)
    db.execute(
        "UPDATE strategy_state SET state = ? WHERE id = 1",
        (pickle.dumps({"evil": _Marker(str(marker))}),),
    )
    if not with_evaluations:
        db.execute("DELETE FROM evaluations")
    db.commit()
    db.close()


@pytest.mark.parametrize("with_evaluations", [True, False])
def test_resume_never_unpickles_the_saved_state(plugin_host, tmp_path, with_evaluations):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    _plant_pickled_state(run, marker, with_evaluations=with_evaluations)
    with pytest.warns(UserWarning, match="not loaded, since unpickling runs code"):
        result = hwnas.search(
            zdt_space(), zdt_evaluate, OBJECTIVES, strategy="nsga2", budget=6, out=run, resume=True
        )
    assert not marker.exists()
    assert len(result.evaluations) == 6


def test_state_codec_round_trips_arrays_tuples_bytes_and_refuses_objects():
    state = {
        "rng": {"state": 2**100, "inc": 7},
        "X": np.arange(6, dtype=np.int16).reshape(2, 3),
        "pair": (1, "a"),
        "raw": b"\x00\xff",
        "nan": float("nan"),
        "scalar": np.float32(0.5),
    }
    back = decode_state(encode_state(state))
    assert back["X"].dtype == np.int16 and np.array_equal(back["X"], state["X"])
    assert back["pair"] == (1, "a") and back["raw"] == b"\x00\xff" and back["rng"] == state["rng"]
    assert np.isnan(back["nan"]) and back["scalar"] == 0.5
    with pytest.raises(ConfigError, match=r"state state.thing holds a object"):
        encode_state({"thing": object()})
    with pytest.raises(ConfigError, match="non-string key 3"):
        encode_state({3: "x"})
    with pytest.raises(ConfigError, match="object arrays are refused"):
        decode_state('{"__hwnas__": "ndarray", "dtype": "|O", "shape": [1], "data": ""}')


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    import os

    with RunStore.in_directory(tmp_path, lock=True):
        with pytest.raises(ConfigError, match=rf"in use by another search \(PID {os.getpid()}\)"):
            RunStore.in_directory(tmp_path, lock=True)
        # readers are never locked out
        with RunStore.open_existing(tmp_path) as reader:
            assert reader.count() == 0
    with RunStore.in_directory(tmp_path, lock=True):  # released on close
        pass


def test_two_searches_on_one_out_do_not_merge(plugin_host, tmp_path):
    def evaluate(subnet):
        hwnas.search(zdt_space(), zdt_evaluate, OBJECTIVES, budget=2, out=tmp_path, seed=1)
        return zdt_evaluate(subnet)

    with pytest.raises(ConfigError, match="in use by another search"):
        hwnas.search(zdt_space(), evaluate, OBJECTIVES, budget=2, out=tmp_path)


def test_a_copy_of_the_store_alone_holds_every_finished_batch(plugin_host, tmp_path):
    run, copies = tmp_path / "run", tmp_path / "copies"
    copies.mkdir()
    calls: list[int] = []

    def evaluate(subnet):
        calls.append(1)
        if len(calls) == 5:  # first batch of 4 done, the second one started
            shutil.copy(run / FILENAME, copies / FILENAME)  # without search.sqlite-wal
        return zdt_evaluate(subnet)

    hwnas.search(
        zdt_space(), evaluate, OBJECTIVES, strategy="random", budget=8, batch_size=4, out=run
    )
    with RunStore.open_existing(copies) as store:
        assert store.count() == 4


@pytest.mark.parametrize("csv_rows", [0, 3])
def test_resume_without_a_stored_run_is_refused(plugin_host, tmp_path, csv_rows):
    if csv_rows:
        rows = "\n".join(f"{i},k{i}" for i in range(csv_rows))
        (tmp_path / "evaluations.csv").write_text(f"index,key\n{rows}\n")
    with pytest.raises(ConfigError, match="nothing to resume") as info:
        hwnas.search(zdt_space(), zdt_evaluate, OBJECTIVES, budget=4, out=tmp_path, resume=True)
    assert (f"evaluations.csv lists {csv_rows}" in str(info.value)) == bool(csv_rows)
    if csv_rows:  # the old report was not overwritten
        assert len((tmp_path / "evaluations.csv").read_text().splitlines()) == csv_rows + 1


class _BreaksOnSecondAsk(hwnas.Strategy):
    name = "breaks-on-second-ask"

    def _ask(self, n):
        if self.history:
            raise RuntimeError("proposal model diverged")
        return self.random_subnets(n)


def test_a_strategy_that_raises_keeps_what_was_measured(plugin_host, tmp_path):
    with pytest.raises(
        StrategyError, match=r"failed in ask\(\): RuntimeError: proposal model diverged"
    ):
        hwnas.search(
            zdt_space(), zdt_evaluate, OBJECTIVES, strategy=_BreaksOnSecondAsk, budget=8,
            batch_size=3, out=tmp_path,
        )  # fmt: skip
    lines = (tmp_path / "evaluations.csv").read_text().splitlines()
    assert len(lines) == 1 + 3  # the first batch, reported
    with RunStore.open_existing(tmp_path) as store:
        assert store.count() == 3


def test_not_a_run_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a search run"):
        RunStore.open_existing(tmp_path)
    (tmp_path / FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable run store"):
        RunStore.open_existing(tmp_path)


def test_a_store_on_a_read_only_mount_is_read(plugin_host, tmp_path, monkeypatch):
    hwnas.search(zdt_space(), zdt_evaluate, OBJECTIVES, budget=3, out=tmp_path)
    import os

    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode)
    )
    with RunStore.open_existing(tmp_path) as store:
        assert store.count() == 3


@pytest.mark.parametrize(
    ("out_kind", "message"),
    [("file", "is a file"), ("under-file", "is a file, not a directory")],
)
def test_search_out_under_a_file_exits_2(plugin_host, tmp_path, out_kind, message):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker if out_kind == "file" else blocker / "run"
    result = run_hwnas(
        "search", "--space", "nb201", "--target", "raspi4", "--budget", "2", "--out", str(out),
        "--quiet",
    )  # fmt: skip
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_report_that_cannot_be_written_keeps_the_evaluations(plugin_host, tmp_path):
    (tmp_path / "pareto.png").mkdir()  # something in the way of a report file
    with pytest.raises(ConfigError, match="report files cannot be written") as info:
        hwnas.search(zdt_space(), zdt_evaluate, OBJECTIVES, budget=4, out=tmp_path)
    assert "--resume" in str(info.value)
    with RunStore.open_existing(tmp_path) as store:
        assert store.count() == 4


class _RegistersBrokenStrategy:
    @hwnas.hookimpl
    def hwnas_register_strategies(self, register):
        register(_BreaksOnSecondAsk)


def test_cli_names_the_failing_plugin_and_how_to_resume(
    builtin_plugin_host, tmp_path, capsys, monkeypatch
):
    import sys

    from hwnas.cli import main

    builtin_plugin_host.register(_RegistersBrokenStrategy(), name="acme-strategies")
    args = ["search", "--space", "nb201", "--target", "raspi4", "--strategy",
            "breaks-on-second-ask", "--budget", "20", "--batch-size", "5", "--out",
            str(tmp_path), "--quiet"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["hwnas", *args])
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "plugin 'acme-strategies'" in err and "proposal model diverged" in err
    assert "5 evaluation(s) are saved" in err and "--resume" in err.splitlines()[-1]
    assert len((tmp_path / "evaluations.csv").read_text().splitlines()) == 6


def test_train_checks_out_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_hwnas("train", "ofa-mbv3", "--epochs", "1", "--out", str(blocker / "net.pt"))
    assert result.returncode == 2 and "is a file, not a directory" in result.stderr
    assert "epoch" not in result.stdout  # refused before any training
