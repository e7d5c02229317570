"""The throwaway PostgreSQL server (tests/postgres_server.py): it holds one Optuna study for two worker processes
at once, and leaves nothing behind."""

from __future__ import annotations

import multiprocessing
import socket
from contextlib import nullcontext
from multiprocessing.synchronize import Barrier

import optuna
import postgres_server as server_module
import pytest
import sqlalchemy
from postgres_server import postgres_server, require_postgres

TRIALS_PER_WORKER = 3
WORKERS = 2
WORKER_TIMEOUT_S = 300  # generous for 2 busy cores; a hung worker fails the test instead of stalling it


def toy_loss(x: float) -> float:
    return (x - 2) ** 2


def run_worker(url: str, study_name: str, barrier: Barrier) -> None:
    """One worker process: joins the stored study and runs its trials. Its first trial meets the other worker's
    first trial at the barrier and records how many trials the server has running then (both wait again before
    either finishes), so the test sees two workers' trials in the database at once."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=optuna.storages.RDBStorage(url))
    first_trial = True

    def objective(trial: optuna.Trial) -> float:
        nonlocal first_trial
        trial.set_user_attr("worker", multiprocessing.current_process().name)
        if first_trial:
            first_trial = False
            barrier.wait(timeout=WORKER_TIMEOUT_S)
            running = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            trial.set_user_attr("running_at_start", len(running))
            barrier.wait(timeout=WORKER_TIMEOUT_S)
        return toy_loss(trial.suggest_float("x", -10, 10))

    study.optimize(objective, n_trials=TRIALS_PER_WORKER)


def test_two_worker_processes_share_one_study_on_the_server(postgres_url):
    study = optuna.create_study(storage=optuna.storages.RDBStorage(postgres_url), study_name="two-workers")
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(WORKERS)
    workers = [spawn.Process(target=run_worker, args=(postgres_url, study.study_name, barrier),
                             name=f"worker-{i}") for i in range(WORKERS)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(WORKER_TIMEOUT_S)
    finally:
        for worker in workers:
            worker.kill()
    assert [w.exitcode for w in workers] == [0] * WORKERS

    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * (WORKERS * TRIALS_PER_WORKER)
    assert sorted(t.number for t in trials) == list(range(WORKERS * TRIALS_PER_WORKER))
    assert all(t.value == toy_loss(t.params["x"]) for t in trials)
    by_worker = sorted(t.user_attrs["worker"] for t in trials)
    assert by_worker == sorted([w.name for w in workers] * TRIALS_PER_WORKER)
    assert [t.user_attrs["running_at_start"] for t in trials if "running_at_start" in t.user_attrs] == [2, 2]


@pytest.mark.parametrize("body_fails", [False, True], ids=["body-returns", "body-raises"])
def test_the_server_stops_and_its_folder_goes_when_the_context_exits(body_fails):
    bin_dir = require_postgres()
    with pytest.raises(RuntimeError) if body_fails else nullcontext(), postgres_server(bin_dir) as server:
        engine = sqlalchemy.create_engine(server.url)
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("select current_database()")).scalar() == server.database
        engine.dispose()
        assert (server.folder / "data" / "postmaster.pid").is_file()
        if body_fails:
            raise RuntimeError("the test body failed")
    assert not server.folder.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=10).close()


@pytest.mark.parametrize(("root", "apt_get", "ci", "outcome"), [
    (False, False, "", pytest.skip.Exception),
    (False, False, "true", pytest.fail.Exception),
    (True, True, "", pytest.fail.Exception),
])
def test_a_missing_server_skips_only_where_it_cannot_be_installed_and_never_under_ci(monkeypatch, root, apt_get,
                                                                                       ci, outcome):
    monkeypatch.setattr(server_module, "postgres_bin_dir", lambda: None)
    monkeypatch.setattr(server_module.os, "geteuid", lambda: 0 if root else 1000)
    monkeypatch.setattr(server_module.shutil, "which", lambda name: "/usr/bin/apt-get" if apt_get else None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="PostgreSQL's server is not installed"):
        require_postgres()
