"""The ML jobs (ml_jobs/) really train, track, register, gate and score — through Airflow, locally.

The pipeline tests run the repo's recsys project with Airflow's dag.test() on the local backend
(steps are processes, MLflow is a sqlite file under a temporary home) for two dates in a row, as
a backfill would; the other tests reuse that home or drive single steps and the registry
directly, so the file stays fast.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import PROJECTS
from esteira.airflow.factory import build_all
from esteira.settings import Settings

RUN_A = datetime(2026, 11, 19, 3, tzinfo=UTC)  # recsys runs daily at 03:00 UTC
RUN_B = datetime(2026, 11, 20, 3, tzinfo=UTC)
OLDER = "2026-11-01"  # a date already in the data lake, which the backfill must not touch
STEPS = ("extract_features", "train", "evaluate_and_register", "score")
FILES = {"train.parquet", "holdout.parquet", "candidates.parquet", "recommendations.parquet",
         *(f"{s}.json" for s in STEPS)}


def copy_projects(dest: Path) -> Path:
    """The repo's projects with the local home under `dest` and no retries (a failure fails now)."""
    projects = dest / "projects"
    shutil.copytree(PROJECTS, projects)
    env_file = projects / "environments.yaml"
    env_file.write_text(env_file.read_text().replace("home: ../.esteira", "home: ../home"))
    config = projects / "recsys" / "config.yaml"
    config.write_text(config.read_text().replace("retries: 2", "retries: 0"))
    return projects


def run_dag(projects: Path, project: str, when: datetime) -> Any:
    """dag.test() re-parses the DAG folder: it must see the same projects as the DAG built here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESTEIRA_PROJECTS_DIR", str(projects))
        mp.setenv("ESTEIRA_BACKEND", "local")
        return build_all(Settings.from_environ())[project].test(logical_date=when)


def client(uri: str) -> Any:
    from ml_jobs.tracking import open_client

    return open_client(uri, create=False)


def aliases(uri: str, name: str) -> dict[str, str]:
    return {alias: str(v) for alias, v in client(uri).get_registered_model(name).aliases.items()}


def versions(uri: str, name: str) -> dict[str, Any]:
    return {str(v.version): v for v in client(uri).search_model_versions(f"name='{name}'")}


def states(run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


@dataclass
class Home:
    """A local esteira home after recsys ran for RUN_A, then RUN_B (a two-date backfill)."""

    projects: Path
    home: Path
    runs: dict[str, Any] = field(default_factory=dict)  # partition date -> dag run
    aliases_after: dict[str, dict[str, str]] = field(default_factory=dict)  # partition date -> aliases

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.home.resolve() / 'mlflow.db'}"

    def partition(self, day: str) -> Path:
        return self.home / "data" / "recsys" / day

    def env(self, day: str, **extra: str) -> dict[str, str]:
        """The environment esteira gives a step, for running one by hand."""
        return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "ENV": "local",
                "RUN_DATE": f"{day}T03:00:00Z", "RUN_ID": f"manual__{day}", "DATA_ROOT": str(self.home / "data"),
                "MLFLOW_EXPERIMENT_NAME": "recsys", "MLFLOW_TRACKING_URI": self.uri, **extra}


@pytest.fixture(scope="module")
def recsys(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Home:
    root = tmp_path_factory.mktemp("recsys")
    home = Home(copy_projects(root), root / "home")
    older = home.partition(OLDER)
    older.mkdir(parents=True)
    (older / "recommendations.parquet").write_bytes(b"an earlier run's output")
    home.partition("2026-11-19").mkdir(parents=True)
    (home.partition("2026-11-19") / "stale.parquet").write_bytes(b"from an earlier run of the same date")
    for when in (RUN_A, RUN_B):
        day = when.date().isoformat()
        home.runs[day] = run_dag(home.projects, "recsys", when)
        try:
            home.aliases_after[day] = aliases(home.uri, "recsys")
        except Exception:  # the run failed before registering: the tests say how
            home.aliases_after[day] = {}
    return home


def step_marker(home: Home, day: str, step: str) -> dict[str, Any]:
    import json

    return json.loads((home.partition(day) / f"{step}.json").read_text())


# --- the pipeline through Airflow --------------------------------------------------------------


def test_a_run_tracks_the_model_registers_a_version_and_scores_with_the_champion(recsys: Home) -> None:
    import mlflow

    from ml_jobs.recsys import TOP_K
    from ml_jobs.recsys.features import FEATURES

    run = recsys.runs["2026-11-19"]
    assert run.state == "success", states(run)
    c = client(recsys.uri)  # also points mlflow's module-level calls at this home
    experiment = c.get_experiment_by_name("recsys")
    [train_run] = c.search_runs([experiment.experiment_id],
                                "tags.`esteira.step` = 'train' and tags.`esteira.run_date` = '2026-11-19T03:00:00Z'")
    tags = train_run.data.tags
    assert tags["esteira.project"] == "recsys"
    assert tags["esteira.run_id"] == run.run_id  # the Airflow run that trained it
    assert tags["esteira.env"] == "local"
    assert tags["esteira.git_version"]
    assert train_run.data.params["model"] == "HistGradientBoostingClassifier"
    metrics = train_run.data.metrics  # held-out evaluation, logged on the model's run
    assert 0 < metrics["ndcg_at_5"] <= 1 and 0 < metrics["map_at_5"] <= 1
    assert metrics["ndcg_at_5"] > metrics["baseline_ndcg_at_5"]  # better than recommending the popular cars

    v1 = versions(recsys.uri, "recsys")["1"]
    assert v1.run_id == train_run.info.run_id
    assert v1.source == step_marker(recsys, "2026-11-19", "train")["model_uri"]
    assert v1.tags["esteira.gate.decision"] == "promoted" and "first model" in v1.tags["esteira.gate.reason"]
    assert v1.tags["esteira.champion_from"] == "2026-11-19T03:00:00Z"  # the run date it is champion from
    assert v1.tags["esteira.promoted_run_id"] == run.run_id
    assert recsys.aliases_after["2026-11-19"] == {"champion": "1", "challenger": "1"}
    info = mlflow.models.get_model_info("models:/recsys/1")
    assert [i.name for i in info.signature.inputs.inputs] == list(FEATURES)
    assert info.saved_input_example_info is not None

    recs = pd.read_parquet(recsys.partition("2026-11-19") / "recommendations.parquet")
    candidates = pd.read_parquet(recsys.partition("2026-11-19") / "candidates.parquet")
    assert set(recs["user_id"]) == set(candidates["user_id"])
    assert recs.groupby("user_id")["rank"].apply(lambda ranks: sorted(ranks) == list(range(1, TOP_K + 1))).all()
    assert set(recs["model_version"]) == {"1"}
    assert step_marker(recsys, "2026-11-19", "score")["model_version"] == "1"


def test_running_again_registers_a_second_version_and_the_gate_decides(recsys: Home) -> None:
    run = recsys.runs["2026-11-20"]
    assert run.state == "success", states(run)
    v = versions(recsys.uri, "recsys")
    assert set(v) == {"1", "2"}
    after = recsys.aliases_after["2026-11-20"]
    assert after["challenger"] == "2"
    gate = v["2"].tags
    assert gate["esteira.gate.champion_version"] == "1"
    assert float(gate["esteira.gate.champion_value"]) > 0  # the champion was scored on the same held-out users
    if gate["esteira.gate.decision"] == "promoted":
        assert after["champion"] == "2" and v["1"].tags["esteira.replaced_by"] == "2"
    else:
        assert gate["esteira.gate.decision"] == "kept"
        assert after["champion"] == "1" and "esteira.replaced_by" not in v["1"].tags
    recs = pd.read_parquet(recsys.partition("2026-11-20") / "recommendations.parquet")
    assert set(recs["model_version"]) == {after["champion"]}  # scoring used the champion of the moment


def test_a_backfill_of_two_dates_writes_two_partitions_and_leaves_the_others_untouched(recsys: Home) -> None:
    for day in ("2026-11-19", "2026-11-20"):
        assert {p.name for p in recsys.partition(day).iterdir()} == FILES, day  # stale files of a re-run are gone
    assert (recsys.partition(OLDER) / "recommendations.parquet").read_bytes() == b"an earlier run's output"
    assert {p.name for p in recsys.partition(OLDER).iterdir()} == {"recommendations.parquet"}
    assert {p.name for p in (recsys.home / "data" / "recsys").iterdir()} == {OLDER, "2026-11-19", "2026-11-20"}
    a = pd.read_parquet(recsys.partition("2026-11-19") / "train.parquet")
    b = pd.read_parquet(recsys.partition("2026-11-20") / "train.parquet")
    assert not a.equals(b)  # each date is built from its own window


# --- failures --------------------------------------------------------------------------------


def test_bad_input_data_fails_with_a_clear_message_runs_nothing_downstream_and_moves_no_alias(
    recsys: Home, capfd: pytest.CaptureFixture[str],
) -> None:
    before = (aliases(recsys.uri, "recsys"), set(versions(recsys.uri, "recsys")))
    run = run_dag(recsys.projects, "recsys", datetime(2024, 6, 1, 3, tzinfo=UTC))  # before the business existed
    assert run.state == "failed"
    assert states(run) == {"extract_features": "failed", "train": "upstream_failed",
                           "evaluate_and_register": "upstream_failed", "score": "upstream_failed"}
    assert "error: extract_features: no rentals in the 90 days before 2024-05-18" in capfd.readouterr().out
    assert not recsys.partition("2024-06-01").exists()
    assert (aliases(recsys.uri, "recsys"), set(versions(recsys.uri, "recsys"))) == before


@pytest.mark.usefixtures("airflow_db")
def test_mlflow_unreachable_fails_the_first_step_that_needs_it_and_nothing_downstream_runs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    projects = copy_projects(tmp_path)
    (tmp_path / "home" / "mlflow.db").mkdir(parents=True)  # the database cannot be opened
    run = run_dag(projects, "recsys", RUN_A)
    assert states(run) == {"extract_features": "success", "train": "failed",
                           "evaluate_and_register": "upstream_failed", "score": "upstream_failed"}
    out = capfd.readouterr().out
    assert f"error: train: MLflow at sqlite:///{tmp_path.resolve()}/home/mlflow.db is unreachable" in out
    partition = tmp_path / "home" / "data" / "recsys" / "2026-11-19"
    assert not (partition / "train.json").exists() and not (partition / "recommendations.parquet").exists()


def run_step(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=120)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """An expected failure says what is wrong in exactly one stderr line, without a traceback."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _drop_column(path: Path) -> None:
    pd.read_parquet(path).drop(columns=["price_ratio"]).to_parquet(path)


def _nulls(path: Path) -> None:
    frame = pd.read_parquet(path)
    frame.loc[:2, "user_rentals"] = None
    frame.to_parquet(path)


@pytest.mark.parametrize(("step", "file", "damage", "message"), [
    ("train", "train.parquet", _drop_column, "train.parquet: missing column(s) price_ratio"),
    ("train", "train.parquet", Path.unlink, "train.parquet: has extract_features run for this date?"),
    ("evaluate_and_register", "holdout.parquet", lambda p: p.write_bytes(b"not parquet"),
     "holdout.parquet is not a readable parquet file"),
    ("score", "candidates.parquet", _nulls, "candidates.parquet: column user_rentals has 3 null value(s)"),
])
def test_a_step_refuses_bad_input_in_one_line_with_exit_code_3_and_moves_no_alias(
    recsys: Home, step: str, file: str, damage: Any, message: str,
) -> None:
    day = "2026-11-25"
    shutil.rmtree(recsys.partition(day), ignore_errors=True)
    shutil.copytree(recsys.partition("2026-11-20"), recsys.partition(day))
    damage(recsys.partition(day) / file)
    before = (aliases(recsys.uri, "recsys"), set(versions(recsys.uri, "recsys")))
    proc = run_step(f"ml_jobs.recsys.{step}", recsys.env(day))
    assert proc.returncode == 3, proc.stderr
    line = one_line_error(proc)
    assert line.startswith(f"error: {step}: ") and message in line
    assert (aliases(recsys.uri, "recsys"), set(versions(recsys.uri, "recsys"))) == before
    shutil.rmtree(recsys.partition(day))


def test_an_unreachable_tracking_server_fails_a_step_in_seconds_with_exit_code_4(recsys: Home) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    proc = run_step("ml_jobs.recsys.train", recsys.env("2026-11-20", MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}"))
    assert proc.returncode == 4, proc.stderr
    assert one_line_error(proc).startswith(f"error: train: MLflow at http://127.0.0.1:{port} is unreachable")
    assert time.monotonic() - started < 60


def test_scoring_without_a_champion_says_how_to_get_one(recsys: Home, tmp_path: Path) -> None:
    """A fresh MLflow (no model registered yet): score fails in one line that names the fix."""
    fresh = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_step("ml_jobs.recsys.score", recsys.env("2026-11-20", MLFLOW_TRACKING_URI=fresh))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr  # (MLflow logs that it creates the fresh store's tables)
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: score: model recsys has no champion as of 2026-11-20T03:00:00Z: run evaluate_and_register for "
        "this date, or promote a version with python -m ml_jobs.registry --model recsys promote VERSION "
        "--from 2026-11-20T03:00:00Z")


# --- the gate and the manual registry flow -------------------------------------------------------


@pytest.mark.parametrize(("challenger", "champion", "champion_version", "lower", "promote", "why"), [
    (0.7, None, None, False, True, "first model"),
    (0.8, 0.7, "1", False, True, "is better than champion v1"),
    (0.6, 0.7, "1", False, False, "is not better than champion v1"),
    (0.7, 0.7, "1", False, False, "tie"),
    (0.7 + 1e-15, 0.7, "1", False, False, "tie"),  # float noise is not an improvement
    (None, 0.7, "1", False, False, "challenger has no auc"),
    (float("nan"), None, None, False, False, "challenger has no auc"),  # even the first model needs a metric
    (0.8, None, "1", False, False, "champion v1 has no auc"),
    (0.8, float("nan"), "1", False, False, "champion v1 has no auc"),
    (0.2, 0.3, "1", True, True, "is better"),  # e.g. a loss: lower is better
])
def test_the_gate_rules(challenger: float | None, champion: float | None, champion_version: str | None,
                        lower: bool, promote: bool, why: str) -> None:
    from ml_jobs.registry import gate

    decision = gate("auc", challenger, champion, champion_version=champion_version, greater_is_better=not lower)
    assert decision.promote is promote
    assert why in decision.reason


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty MLflow database (created once: its migrations take seconds)."""
    from ml_jobs.tracking import open_client

    uri = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"
    open_client(uri).create_experiment("gate")
    return uri


def new_version(uri: str, name: str, auc: float | None) -> str:
    from ml_jobs.registry import GATE_METRIC_TAG

    c = client(uri)
    if not c.search_registered_models(f"name='{name}'"):
        c.create_registered_model(name, tags={GATE_METRIC_TAG: "auc"})
    run = c.create_run(c.get_experiment_by_name("gate").experiment_id)
    if auc is not None:
        c.log_metric(run.info.run_id, "auc", auc)
    c.set_terminated(run.info.run_id)
    return str(c.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version)


def test_a_worse_challenger_is_kept_out_and_a_better_one_replaces_the_champion(registry_uri: str) -> None:
    from ml_jobs.registry import challenge

    model_name = "pipeline-gate"

    c = client(registry_uri)
    # what each model scores on "today's" held-out data when the pipeline evaluates it
    today = {"1": 0.70, "2": 0.65, "3": 0.74}

    def evaluate(uri: str) -> float:
        return today[uri.rsplit("/", 1)[1]]

    outcomes = []
    for day, (version, auc) in enumerate(today.items(), start=1):  # one run date after the other
        assert new_version(registry_uri, model_name, auc) == version
        outcomes.append(challenge(c, model_name, version, run_date=f"2026-03-0{day}T03:00:00Z", run_id=f"r{day}",
                                  metric="auc", challenger_value=auc, evaluate=evaluate))
        if version == "2":
            assert aliases(registry_uri, model_name) == {"champion": "1", "challenger": "2"}
    assert [o["promoted"] for o in outcomes] == [True, False, True]
    assert aliases(registry_uri, model_name) == {"champion": "3", "challenger": "3"}
    v = versions(registry_uri, model_name)
    assert v["1"].tags["esteira.replaced_by"] == "3"
    assert "esteira.replaced_by" not in v["2"].tags and "esteira.replaced_by" not in v["3"].tags
    assert v["2"].tags["esteira.gate.decision"] == "kept"
    assert v["3"].tags["esteira.promotion_forced"] == "false"


def test_the_registry_cli_lists_versions_and_promotes_with_the_gate_or_by_force_with_a_reason(
    registry_uri: str, capsys: pytest.CaptureFixture[str],
) -> None:
    from ml_jobs.registry import main

    model_name = "manual-flow"

    for auc in (0.70, 0.60, None):
        new_version(registry_uri, model_name, auc)
    cli = ["--tracking-uri", registry_uri, "--model", model_name]
    assert main([*cli, "promote", "1"]) == 0  # first model: the gate lets it in
    assert main([*cli, "promote", "2"]) == 1  # worse
    assert "v2 not promoted: auc 0.6000 is not better than champion v1's 0.7000" in capsys.readouterr().err
    assert main([*cli, "promote", "3"]) == 1  # no metric
    assert main([*cli, "promote", "2", "--force"]) == 2  # a forced promotion needs a reason
    assert aliases(registry_uri, model_name) == {"champion": "1"}

    assert main([*cli, "promote", "2", "--force", "--reason", "rollback: v1 breaks on new vehicles"]) == 0
    assert aliases(registry_uri, model_name) == {"champion": "2"}
    v = versions(registry_uri, model_name)
    assert v["2"].tags["esteira.promotion_forced"] == "true"
    assert v["2"].tags["esteira.promotion_reason"] == "rollback: v1 breaks on new vehicles"
    assert v["1"].tags["esteira.replaced_by"] == "2"

    capsys.readouterr()
    assert main([*cli, "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) == {"1", "2", "3"}
    assert rows["2"].split()[1] == "champion" and "0.6000" in rows["2"] and "forced: rollback" in rows["2"]
    assert "0.7000" in rows["1"] and "replaced by v2" in rows["1"]
    assert rows["3"].split()[1:3] == ["-", "-"]  # no alias, no metric

    assert main(["--tracking-uri", registry_uri, "--model", "nope", "list"]) == 2  # unknown model: a usage error


# --- data: deterministic, the same on a folder and on S3 -----------------------------------------


def test_the_synthetic_data_depends_only_on_the_seed_and_the_day() -> None:
    from ml_jobs.recsys.features import pair_features
    from ml_jobs.synthetic import rentals, world

    w = world(7)
    # the rentals of a day are the same whichever window (run date) reads them
    longer = rentals(w, date(2026, 9, 1), date(2026, 10, 20))
    later = longer[longer["day"] >= date(2026, 10, 1).toordinal()].reset_index(drop=True)
    assert rentals(w, date(2026, 10, 1), date(2026, 10, 20)).equals(later)
    first = pair_features(w, date(2026, 11, 6), 90, 14)
    assert first.equals(pair_features(world(7), date(2026, 11, 6), 90, 14))
    assert not first.equals(pair_features(w, date(2026, 11, 7), 90, 14))
    assert not rentals(world(8), date(2026, 10, 1), date(2026, 10, 2)).equals(rentals(w, date(2026, 10, 1), date(2026, 10, 2)))


def test_ranking_metrics_match_a_hand_computed_example() -> None:
    import math

    from ml_jobs.ranking import ranking_metrics

    frame = pd.DataFrame({"user_id": ["a"] * 4 + ["b"] * 3 + ["c"] * 2,
                          "vehicle_id": ["1", "2", "3", "4", "1", "2", "3", "1", "2"],
                          "s": [0.9, 0.8, 0.7, 0.6, 0.1, 0.5, 0.3, 0.5, 0.5],
                          "r": [0, 1, 0, 1, 0, 0, 0, 0, 1]})
    got = ranking_metrics(frame, score="s", relevant="r", k=3)
    # a: relevant at ranks 2 and 4 (k=3 sees rank 2 only); b: nothing relevant (left out);
    # c: a tie broken by vehicle id puts the relevant "2" second
    ndcg_a = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    ndcg_c = 1 / math.log2(3)
    assert got["eval_users"] == 2
    assert got["ndcg_at_3"] == pytest.approx((ndcg_a + ndcg_c) / 2)
    assert got["map_at_3"] == pytest.approx((0.5 / 2 + 0.5 / 1) / 2)
    assert got["recall_at_3"] == pytest.approx((0.5 + 1.0) / 2)


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_a_step_reads_and_writes_s3_partitions_through_the_same_code(s3_endpoint: str, tmp_path: Path) -> None:
    import boto3

    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
             "AWS_EC2_METADATA_DISABLED": "true"}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="esteira/recsys/2026-11-20/stale.parquet", Body=b"old")
    s3.put_object(Bucket="lake", Key="esteira/recsys/2026-11-19/recommendations.parquet", Body=b"keep")
    env = {"PATH": os.environ["PATH"], "RUN_DATE": "2026-11-20T03:00:00Z", "RUN_ID": "r1", "ENV": "dev",
           "DATA_ROOT": "s3://lake/esteira", "MLFLOW_EXPERIMENT_NAME": "recsys",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'unused.db'}", "AWS_ENDPOINT_URL_S3": s3_endpoint, **creds}
    proc = run_step("ml_jobs.recsys.extract_features", env)
    assert proc.returncode == 0, proc.stderr
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="esteira/recsys/")["Contents"]
            if not o["Key"].endswith("/")}
    day = "esteira/recsys/2026-11-20/"
    assert keys == {f"{day}train.parquet", f"{day}holdout.parquet", f"{day}candidates.parquet",
                    f"{day}extract_features.json", "esteira/recsys/2026-11-19/recommendations.parquet"}
    body = s3.get_object(Bucket="lake", Key=f"{day}train.parquet")["Body"].read()
    assert body[:4] == b"PAR1"
    # the next step reads what this one wrote from S3, and refuses it clearly when it is damaged
    s3.put_object(Bucket="lake", Key=f"{day}train.parquet", Body=b"garbage")
    proc = run_step("ml_jobs.recsys.train", env)
    assert proc.returncode == 3
    assert one_line_error(proc).startswith(f"error: train: s3://lake/{day}train.parquet is not a readable parquet")
