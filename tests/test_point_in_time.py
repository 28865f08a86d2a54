"""Point-in-time runs: a date scores with the champion as of its RUN_DATE, whatever ran before.

An Airflow backfill runs dates in any order (up to 10 at once), and a re-run of a date must
reproduce its scores, not only its input data. The pipelines here run for real, as processes with
the environment esteira gives each step (as tests/test_ml_jobs.py runs single steps): MLflow is a
sqlite file under tmp_path, the models are real scikit-learn fits. The rule itself (which version
is champion as of a date) is also tested on its own, without processes.

Sizes: recsys's feature window is cut to 30 days through the jobs' own knob (APP_FEATURE_WINDOW_DAYS),
which shrinks its tables; the time left is mostly each step's process start (MLflow, scikit-learn and
skops imports) and MLflow's model logging, so the three scenarios run concurrently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from conftest import REPO

RECSYS_DATES = ("2026-11-16T03:00:00Z", "2026-11-17T03:00:00Z", "2026-11-18T03:00:00Z")  # daily at 03:00 UTC
CHURN_DATES = ("2026-11-19T07:30:00Z", "2026-11-20T07:30:00Z")  # Thu, Fri 04:30 in São Paulo
PIPELINES: dict[str, tuple[tuple[str, ...], ...]] = {  # steps in order; a tuple of several runs in parallel
    "recsys": (("extract_features",), ("train",), ("evaluate_and_register",), ("score",)),
    "churn": (("extract_features",), ("train_logreg", "train_gbm"), ("select_best",), ("score",)),
}
GATE_STEP = {"recsys": "evaluate_and_register", "churn": "select_best"}
OUTPUT = {"recsys": "recommendations.parquet", "churn": "predictions.parquet"}
KNOBS = {"recsys": {"APP_FEATURE_WINDOW_DAYS": "30"}, "churn": {}}  # churn keeps its 90 days: it counts the last 30


@dataclass(frozen=True)
class Run:
    """One pipeline run of one date: its scores and every step's marker."""

    run_date: str
    run_id: str
    scores: pd.DataFrame
    markers: dict[str, dict[str, Any]]

    @property
    def scored_with(self) -> str:
        """The model version the score step used (its marker; every output row names it too)."""
        return str(self.markers["score"]["model_version"])


@dataclass
class Lake:
    """A local home for one project: a data folder and an MLflow database, pipelines run as processes."""

    root: Path
    project: str
    runs: list[Run] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)  # the `champion` alias after each run

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.root.resolve() / 'mlflow.db'}"

    def env(self, run_date: str, run_id: str) -> dict[str, str]:
        """What esteira gives every step of a run (and GIT_SHA, which the image sets)."""
        return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "ENV": "local",
                "RUN_DATE": run_date, "RUN_ID": run_id, "DATA_ROOT": str(self.root / "data"),
                "MLFLOW_EXPERIMENT_NAME": self.project, "MLFLOW_TRACKING_URI": self.uri, "GIT_SHA": "test",
                **KNOBS[self.project]}

    def run(self, run_date: str, run_id: str) -> Run:
        """Every step of the pipeline for `run_date`, in order; a step that fails fails the test."""
        env = self.env(run_date, run_id)
        for group in PIPELINES[self.project]:
            with ThreadPoolExecutor(len(group)) as pool:
                procs = list(pool.map(lambda step: _step(f"ml_jobs.{self.project}.{step}", env), group))
            for step, proc in zip(group, procs, strict=True):
                assert proc.returncode == 0, f"{step} for {run_date}: {proc.stderr[-3000:]}"
        day = self.root / "data" / self.project / run_date[:10]
        steps = [step for group in PIPELINES[self.project] for step in group]
        run = Run(run_date, run_id, pd.read_parquet(day / OUTPUT[self.project]),
                  {step: json.loads((day / f"{step}.json").read_text()) for step in steps})
        self.runs.append(run)
        self.aliases.append(self.alias())
        return run

    def client(self) -> Any:
        from ml_jobs.tracking import open_client

        return open_client(self.uri, create=False)

    def versions(self) -> dict[str, Any]:
        from ml_jobs.registry import model_versions

        return {str(v.version): v for v in model_versions(self.client(), self.project)}

    def alias(self) -> str:
        return str(self.client().get_registered_model(self.project).aliases["champion"])

    def champion_as_of(self, run_date: str) -> str:
        from ml_jobs.registry import champion_version

        found = champion_version(self.client(), self.project, instant(run_date))
        assert found is not None, run_date
        return str(found.version)


def _step(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def in_order_then_again(lake: Lake, dates: tuple[str, ...]) -> Lake:
    """Each date in order (as the schedule runs them), then each again in reverse with a new RUN_ID."""
    for d in dates:
        lake.run(d, f"scheduled__{d}")
    for d in reversed(dates):
        lake.run(d, f"manual__rerun_{d}")
    return lake


def out_of_order(lake: Lake, dates: tuple[str, ...]) -> Lake:
    """A backfill that happened to finish the last date first, then the first, then the second."""
    for d in (dates[2], dates[0], dates[1]):
        lake.run(d, f"backfill__{d}")
    return lake


# Each scenario is a run of pipelines on its own MLflow database. The pipelines are process starts
# (imports) and fits, so the scenarios the selected tests need run concurrently, each in order.
SCENARIOS: dict[str, tuple[str, Callable[[Lake, tuple[str, ...]], Lake], tuple[str, ...]]] = {
    "recsys_in_order": ("recsys", in_order_then_again, RECSYS_DATES),
    "churn_in_order": ("churn", in_order_then_again, CHURN_DATES),
    "recsys_out_of_order": ("recsys", out_of_order, RECSYS_DATES),
}


def needs(*names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The scenarios a test reads (the `scenarios` fixture starts only those of selected tests)."""
    def mark(test: Callable[..., None]) -> Callable[..., None]:
        test.scenarios = names  # type: ignore[attr-defined]
        return test
    return mark


@pytest.fixture(scope="module")
def scenarios(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Lake]]]:
    wanted = {name for item in request.session.items if getattr(item, "module", None) is request.module
              for name in getattr(getattr(item, "function", None), "scenarios", ())}
    with ThreadPoolExecutor(max(len(wanted), 1)) as pool:
        yield {name: pool.submit(run, Lake(tmp_path_factory.mktemp(name), project), dates)
               for name, (project, run, dates) in SCENARIOS.items() if name in wanted}


def assert_reruns_reproduce(lake: Lake, dates: tuple[str, ...]) -> None:
    """The first pass ran `dates` in order, the second in reverse: every date scored as the first time."""
    n = len(dates)
    first = {r.run_date: r for r in lake.runs[:n]}
    again = {r.run_date: r for r in lake.runs[n:]}
    gate = GATE_STEP[lake.project]
    versions = lake.versions()
    assert len(versions) == 2 * n  # every run registers its model; the re-runs' stay out
    for d in dates:
        pd.testing.assert_frame_equal(again[d].scores, first[d].scores)  # same rows, scores, version
        assert again[d].scored_with == first[d].scored_with == lake.champion_as_of(d)
        # the re-run's gate faced the date's champion (what its first run left) and kept it: a first
        # run that promoted its model meets the same model again (a tie), one that kept the older
        # champion makes the very same comparison (the same numbers, so the same words)
        assert again[d].markers[gate]["champion_before"] == first[d].markers[gate]["champion"] == first[d].scored_with
        rerun, original = (versions[run.markers[gate]["version"]].tags for run in (again[d], first[d]))
        assert rerun["esteira.gate.decision"] == "kept"
        if original["esteira.gate.decision"] == "promoted":
            assert rerun["esteira.gate.reason"].startswith("tie:")
        else:
            assert rerun["esteira.gate.reason"] == original["esteira.gate.reason"]
        assert instant(versions[first[d].scored_with].tags["esteira.run_date"]) <= instant(d)  # nothing later
    latest = lake.champion_as_of(dates[-1])
    assert lake.runs[n - 1].scored_with == latest  # the last date of the first pass scored with it
    assert lake.aliases[n - 1:] == [latest] * (n + 1)  # the alias: on it then, and through every re-run
    v1 = versions["1"].tags  # the first date's model: promoted for that date by that run
    assert v1["esteira.champion_from"] == dates[0]
    assert v1["esteira.promoted_run_id"] == f"scheduled__{dates[0]}"


# --- recsys and churn, each date run twice -----------------------------------------------------------


@needs("recsys_in_order")
def test_recsys_rerun_of_each_date_in_reverse_reproduces_its_scores_and_keeps_the_champion(
    scenarios: dict[str, Future[Lake]],
) -> None:
    assert_reruns_reproduce(scenarios["recsys_in_order"].result(), RECSYS_DATES)


@needs("churn_in_order")
def test_churn_rerun_of_each_date_in_reverse_reproduces_its_scores_and_keeps_the_champion(
    scenarios: dict[str, Future[Lake]],
) -> None:
    assert_reruns_reproduce(scenarios["churn_in_order"].result(), CHURN_DATES)


# --- a backfill out of order -------------------------------------------------------------------------


@needs("recsys_out_of_order", "recsys_in_order")
def test_a_backfill_out_of_order_never_scores_a_date_with_a_model_promoted_for_a_later_one(
    scenarios: dict[str, Future[Lake]],
) -> None:
    """Fresh MLflow; the last date runs first (its model becomes champion), then the first, then the second."""
    lake = scenarios["recsys_out_of_order"].result()
    d1, d2, d3 = RECSYS_DATES
    late, early = lake.runs[0], {r.run_date: r for r in lake.runs[1:]}
    assert (late.run_date, list(early)) == (d3, [d1, d2])
    assert late.scored_with == "1"

    versions = lake.versions()
    assert versions["1"].tags["esteira.run_date"] == d3
    for d, run in early.items():
        used = versions[run.scored_with].tags
        assert run.scored_with != "1"  # never the model registered (and promoted) for the later date
        assert instant(used["esteira.run_date"]) <= instant(d)
        assert all(instant(x) <= instant(d) for x in used["esteira.champion_from"].split(","))
        assert set(run.scores["model_version"]) == {run.scored_with}
        # the gate compared with the champion as of the same date, not the alias (v1, from d3)
        assert versions[run.markers["evaluate_and_register"]["version"]].tags["esteira.gate.champion_version"] != "1"
    assert early[d1].markers["evaluate_and_register"]["champion_before"] is None  # nothing as of d1 yet
    assert lake.aliases == ["1", "1", "1"]  # promoting earlier dates never moved the alias back
    assert lake.champion_as_of(d3) == "1"

    # each early date scored exactly as when the dates ran in order (the versions are numbered differently)
    in_order = {r.run_date: r for r in scenarios["recsys_in_order"].result().runs[:len(RECSYS_DATES)]}
    columns = ["user_id", "vehicle_id", "score", "rank", "run_date"]
    for d, run in early.items():
        pd.testing.assert_frame_equal(run.scores[columns], in_order[d].scores[columns])


# --- the rule on its own, and through the registry -----------------------------------------------------


def version(number: int, **tags: str) -> Any:
    """What the rule reads of a model version: its number, name and tags."""
    return SimpleNamespace(version=str(number), name="m", tags={f"esteira.{k}": v for k, v in tags.items()})


@pytest.mark.parametrize(("as_of", "expected"), [
    ("2026-03-01T02:59:59Z", None),  # before any promotion
    ("2026-03-01T03:00:00Z", "1"),  # a date's own promotion counts for it
    ("2026-03-02T12:00:00+02:00", "1"),  # offsets are compared as instants (10:00Z)
    ("2026-03-03T03:00:00Z", "3"),  # a re-run's better v3 took 03-03 from v2
    ("2026-03-04T03:00:00Z", "3"),
    ("2026-03-05T03:00:00Z", "4"),  # v4 was promoted after v5 (a backfill), for an earlier date
    ("2026-03-06T00:00:00Z", "4"),
    ("2026-03-07T03:00:00Z", "5"),
    ("2026-03-10T09:00:00Z", "1"),  # v1 rolled back by hand from 03-10
    (None, "1"),  # the latest run date promoted so far: what the alias shows
])
def test_the_champion_as_of_a_date_is_the_latest_promotion_starting_at_or_before_it(
    as_of: str | None, expected: str | None,
) -> None:
    from ml_jobs.registry import champion_as_of

    versions = [
        version(1, champion_from="2026-03-01T03:00:00Z,2026-03-10T09:00:00Z", promoted_at="2026-03-10T09:01:00Z"),
        version(2, champion_from="", champion_withdrawn="2026-03-03T03:00:00Z", promoted_at="2026-03-03T03:10:00Z"),
        version(3, champion_from="2026-03-03T03:00:00Z", promoted_at="2026-03-04T08:00:00Z"),
        version(4, champion_from="2026-03-05T03:00:00Z", promoted_at="2026-03-08T03:10:00Z"),
        version(5, champion_from="2026-03-07T03:00:00Z", promoted_at="2026-03-07T03:10:00Z"),
        version(6, run_date="2026-03-06T03:00:00Z"),  # registered, never promoted
    ]
    found = champion_as_of(versions, None if as_of is None else instant(as_of))
    assert (None if found is None else found.version) == expected


def test_a_version_promoted_before_champion_from_existed_counts_from_its_run_date() -> None:
    from ml_jobs.registry import champion_as_of

    legacy = [version(1, run_date="2026-01-01T03:00:00Z", promoted_at="2026-01-01T03:10:00Z"),
              version(2, run_date="2026-01-05T03:00:00Z", promoted_at="2026-01-05T03:10:00Z"),
              version(3, run_date="2026-01-04T03:00:00Z"),  # kept out by its gate
              version(4, run_date="2026-01-05T03:00:00Z", promoted_at="2026-01-06T10:00:00Z")]  # a re-run's
    assert champion_as_of(legacy, instant("2026-01-04T03:00:00Z")).version == "1"
    assert champion_as_of(legacy, instant("2026-01-05T03:00:00Z")).version == "4"  # one date, two: the newer


@pytest.fixture
def registry_uri(tmp_path: Path) -> Iterator[str]:
    from ml_jobs.tracking import open_client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_client(uri).create_experiment("gate")
    yield uri


def _new_version(uri: str, name: str, auc: float) -> str:
    from ml_jobs.registry import GATE_METRIC_TAG
    from ml_jobs.tracking import open_client

    c = open_client(uri, create=False)
    if not c.search_registered_models(f"name='{name}'"):
        c.create_registered_model(name, tags={GATE_METRIC_TAG: "auc"})
    run = c.create_run(c.get_experiment_by_name("gate").experiment_id)
    c.log_metric(run.info.run_id, "auc", auc)
    c.set_terminated(run.info.run_id)
    return str(c.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version)


def test_the_gate_of_each_date_faces_that_dates_champion_and_the_alias_never_moves_back(registry_uri: str) -> None:
    """The registry alone (no processes): dates gated out of order, then a rollback by hand from a date."""
    from ml_jobs.registry import challenge, champion_version, main
    from ml_jobs.tracking import open_client

    c = open_client(registry_uri, create=False)
    name = "pit"
    # what each version scores on any date's held-out data (the gate evaluates the champion on it)
    auc = {"1": 0.70, "2": 0.60, "3": 0.65}

    def gate(v: str, run_date: str) -> dict[str, Any]:
        return challenge(c, name, v, run_date=run_date, run_id=f"r-{v}", metric="auc", challenger_value=auc[v],
                         evaluate=lambda uri: auc[uri.rsplit("/", 1)[1]])

    def as_of(run_date: str) -> str:
        return str(champion_version(c, name, instant(run_date)).version)

    for v in auc:
        assert _new_version(registry_uri, name, auc[v]) == v
    late = gate("1", "2026-03-10T03:00:00Z")  # the backfill's last date ran first
    early = gate("2", "2026-03-01T03:00:00Z")  # no champion as of 03-01: v2 promotes, although v1 is better
    middle = gate("3", "2026-03-05T03:00:00Z")  # faces v2 (champion as of 03-05), not v1 (the alias)
    assert [late["promoted"], early["promoted"], middle["promoted"]] == [True, True, True]
    assert middle["champion_before"] == "2" and middle["replaced"] == "2"
    assert str(c.get_registered_model(name).aliases["champion"]) == "1"  # still the latest date's
    dates = ("2026-03-01T03:00:00Z", "2026-03-07T00:00:00Z", "2026-03-10T03:00:00Z")
    assert [as_of(d) for d in dates] == ["2", "3", "1"]
    assert gate("3", "2026-03-05T03:00:00Z")["reason"] == "already champion"  # a retry changes nothing

    # a rollback by hand from 03-10 (re-runs of that date included): v3 takes the date and the alias
    assert main(["--tracking-uri", registry_uri, "--model", name, "promote", "3", "--force",
                 "--reason", "rollback: v1 mis-scores vans", "--from", "2026-03-10T03:00:00Z"]) == 0
    assert as_of("2026-03-10T03:00:00Z") == "3"
    assert str(c.get_registered_model(name).aliases["champion"]) == "3"
    v3 = c.get_model_version(name, "3").tags
    assert v3["esteira.champion_from"] == "2026-03-05T03:00:00Z,2026-03-10T03:00:00Z"
    assert v3["esteira.promoted_by"] != "pipeline" and v3["esteira.promotion_forced"] == "true"
    v1 = c.get_model_version(name, "1").tags  # one champion per date: v1 gave 03-10 up
    assert (v1["esteira.champion_from"], v1["esteira.champion_withdrawn"]) == ("", "2026-03-10T03:00:00Z")
    assert v1["esteira.replaced_by"] == "3"
    assert as_of("2026-03-06T00:00:00Z") == "3"  # its first period is kept
    # promoting by hand for an earlier date leaves the alias on the latest date's champion
    assert main(["--tracking-uri", registry_uri, "--model", name, "promote", "1", "--force",
                 "--reason", "v1 for the week of 03-02", "--from", "2026-03-02T03:00:00Z"]) == 0
    assert as_of("2026-03-03T00:00:00Z") == "1"
    assert str(c.get_registered_model(name).aliases["champion"]) == "3"
