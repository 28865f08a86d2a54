"""The deploy path users rely on: the image script's commands, and the GitHub workflows.

scripts/build_push_image.py is run as users run it (a subprocess), with fake `docker` and
`aws` on PATH where a real run is needed: no Docker engine or AWS account is touched. The
workflows are checked by the two independent validators the repo pins (check-jsonschema's
GitHub schema, zizmor offline) and by the facts a reviewer would check by hand: which branch
deploys where, OIDC only, SHA-pinned actions, no template injection.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from esteira.config import Project
from esteira.discovery import discover
from esteira.environments import load_environments

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "build_push_image.py"
GITHUB = REPO / ".github"
WORKFLOWS = GITHUB / "workflows"
BIN = Path(sys.executable).parent
SHA = "0123456789abcdef0123456789abcdef01234567"
PASSWORD = "s3cr3t-ecr-token"  # what the fake `aws ecr get-login-password` prints


# --- helpers ---------------------------------------------------------------------------------

def projects() -> list[Project]:
    loaded = discover(REPO / "projects")
    assert loaded and all(isinstance(p, Project) for p in loaded), loaded
    return [p for p in loaded if isinstance(p, Project)]


def ecr(env: str) -> tuple[str, str]:
    """(ecr_repository, region) of an environment, from environments.yaml as the script reads it."""
    aws = load_environments(REPO / "projects" / "environments.yaml").aws(env)
    return aws.ecr_repository, aws.region


def expected_commands(env: str, chosen: list[Project], dockerfile: Path, sha: str = SHA) -> list[list[str]]:
    repo, region = ecr(env)
    cmds = [["aws", "ecr", "get-login-password", "--region", region],
            ["docker", "login", "--username", "AWS", "--password-stdin", repo.split("/")[0]]]
    for p in chosen:
        uri = p.names.image_uri(repo)
        assert uri == f"{repo}:{p.name}-{p.config.version}"  # the seed's {ecr}:{project}-{version}
        cmds.append(["docker", "build", "--file", str(dockerfile), "--platform", "linux/amd64", "--tag", uri,
                     "--build-arg", f"PROJECT={p.name}",
                     "--label", f"org.opencontainers.image.revision={sha}",
                     "--label", f"org.opencontainers.image.version={p.config.version}",
                     "--label", f"org.opencontainers.image.title={p.name}",
                     "--label", f"io.esteira.project={p.name}",
                     str(REPO)])
        cmds.append(["docker", "push", uri])
    return cmds


def run_script(*args: str, path: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The script as a user runs it, with PATH holding only `path` (no real docker or aws)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ESTEIRA_"))}
    env.update({"PATH": str(path), "FAKE_LOG": str(path / "calls.jsonl"), **(extra_env or {})})
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=60)


def dry_run_commands(stdout: str) -> list[list[str]]:
    """Each printed line as argv; the login line is two commands joined by a pipe."""
    out: list[list[str]] = []
    for line in stdout.splitlines():
        for part in line.split(" | "):
            out.append(shlex.split(part))
    return out


FAKE = """\
#!{python}
# A stand-in for `{name}` that records argv (and stdin of `docker login`) and fails on request.
import json, os, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if "--password-stdin" in args else None
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({{"argv": ["{name}", *args], "stdin": stdin}}) + "\\n")
fail = os.environ.get("FAKE_FAIL", "")
if fail and " ".join(["{name}", *args]).startswith(fail):
    print("fake failure", file=sys.stderr)
    sys.exit(3)
if args[:1] == ["ecr"]:
    print("{password}")
if args[:1] == ["version"]:
    print("27.0.0")
"""


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A PATH folder with fake `docker` and `aws`."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("docker", "aws"):
        tool = folder / name
        tool.write_text(FAKE.format(python=sys.executable, name=name, password=PASSWORD))
        tool.chmod(0o755)
    return folder


@pytest.fixture
def dockerfile(tmp_path: Path) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM scratch\n")
    return path


def calls(folder: Path) -> list[dict[str, Any]]:
    log = folder / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# --- scripts/build_push_image.py ---------------------------------------------------------------

def test_dry_run_prints_the_exact_login_build_and_push_commands(tmp_path: Path, dockerfile: Path) -> None:
    recsys = next(p for p in projects() if p.name == "recsys")
    done = run_script("recsys", "--env", "dev", "--dry-run", "--git-sha", SHA, "--dockerfile", str(dockerfile),
                      path=tmp_path)  # an empty PATH: a dry run needs neither docker nor aws
    assert done.returncode == 0, done.stderr
    assert dry_run_commands(done.stdout) == expected_commands("dev", [recsys], dockerfile)
    assert done.stdout.splitlines()[0].count(" | ") == 1  # shown as the pipe it stands for


def test_dry_run_all_prd_logs_in_once_then_builds_and_pushes_every_project(tmp_path: Path, dockerfile: Path) -> None:
    done = run_script("--all", "--env", "prd", "--dry-run", "--dockerfile", str(dockerfile), path=tmp_path,
                      extra_env={"GITHUB_SHA": SHA})  # CI's commit lands in the revision label
    assert done.returncode == 0, done.stderr
    cmds = dry_run_commands(done.stdout)
    assert cmds == expected_commands("prd", projects(), dockerfile)
    repo, _ = ecr("prd")
    assert repo.startswith("222222222222.")  # prd's registry, not dev's
    assert len([c for c in cmds if c[:2] == ["docker", "push"]]) == len(projects()) >= 2


def test_dry_run_without_a_dockerfile_still_prints_and_warns(tmp_path: Path) -> None:
    done = run_script("churn", "--env", "dev", "--dry-run", "--git-sha", SHA,
                      "--dockerfile", str(tmp_path / "missing" / "Dockerfile"), path=tmp_path)
    assert done.returncode == 0
    assert "no Dockerfile" in done.stderr
    assert "docker push" in done.stdout


def test_a_real_run_executes_the_dry_run_commands_and_pipes_the_password(fake_bin: Path, dockerfile: Path) -> None:
    args = ("--all", "--env", "dev", "--git-sha", SHA, "--dockerfile", str(dockerfile))
    planned = dry_run_commands(run_script(*args, "--dry-run", path=fake_bin).stdout)
    done = run_script(*args, path=fake_bin)
    assert done.returncode == 0, done.stderr
    made = [c for c in calls(fake_bin) if c["argv"][:2] != ["docker", "version"]]  # minus the engine probe
    assert [c["argv"] for c in made] == planned
    login = next(c for c in made if c["argv"][:2] == ["docker", "login"])
    assert login["stdin"].strip() == PASSWORD  # through stdin ...
    assert all(PASSWORD not in " ".join(c["argv"]) for c in calls(fake_bin))  # ... never argv
    assert PASSWORD not in done.stdout + done.stderr  # nor the log
    for p in projects():
        assert f"pushed {p.names.image_uri(ecr('dev')[0])}" in done.stdout


def test_a_failed_push_stops_the_run_with_exit_1(fake_bin: Path, dockerfile: Path) -> None:
    first, *_ = projects()
    done = run_script("--all", "--env", "dev", "--git-sha", SHA, "--dockerfile", str(dockerfile), path=fake_bin,
                      extra_env={"FAKE_FAIL": "docker push"})
    assert done.returncode == 1
    assert f"docker push {first.names.image_uri(ecr('dev')[0])}' failed with exit code 3" in done.stderr
    assert len([c for c in calls(fake_bin) if c["argv"][:2] == ["docker", "build"]]) == 1  # nothing after it


def test_no_docker_on_path_is_said_plainly(tmp_path: Path, dockerfile: Path) -> None:
    done = run_script("recsys", "--env", "dev", "--git-sha", SHA, "--dockerfile", str(dockerfile), path=tmp_path)
    assert done.returncode == 1
    assert "there is no Docker engine here" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_docker_cli_without_an_engine_is_said_plainly(fake_bin: Path, dockerfile: Path) -> None:
    done = run_script("recsys", "--env", "dev", "--git-sha", SHA, "--dockerfile", str(dockerfile), path=fake_bin,
                      extra_env={"FAKE_FAIL": "docker version"})
    assert done.returncode == 1
    assert "no Docker engine reachable" in done.stderr
    assert [c["argv"][:2] for c in calls(fake_bin)] == [["docker", "version"]]  # no login, no build


@pytest.mark.parametrize("args, message", [
    (("nope", "--env", "dev", "--dry-run"), "unknown project(s): nope; known projects in"),
    (("--env", "dev", "--dry-run"), "name one or more projects, or pass --all"),
    (("recsys", "--all", "--env", "dev", "--dry-run"), "name one or more projects, or pass --all"),
])
def test_bad_usage_exits_2_with_a_message(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = run_script(*args, path=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_a_real_run_refuses_a_missing_dockerfile_before_any_command(fake_bin: Path) -> None:
    done = run_script("recsys", "--env", "dev", "--dockerfile", str(fake_bin / "Dockerfile"), path=fake_bin)
    assert done.returncode == 2
    assert "no Dockerfile at" in done.stderr
    assert calls(fake_bin) == []


# --- .github: independent validators ---------------------------------------------------------

def workflow_files() -> list[Path]:
    files = sorted(WORKFLOWS.glob("*.y*ml"))
    assert {f.name for f in files} >= {"deploy.yml", "test.yml"}
    return files


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}: pip install -r requirements-dev.txt -c constraints.txt")
    return str(path)


def test_workflows_match_githubs_workflow_schema() -> None:
    done = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           *map(str, workflow_files())], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dependabot_config_matches_its_schema() -> None:
    done = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot",
                           str(GITHUB / "dependabot.yml")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing_offline() -> None:
    # .github as input: every workflow and dependabot.yml. The config's one ignore
    # (self-repository on deploy.yml) is explained there; no other audit may be switched off.
    config = GITHUB / "zizmor.yml"
    assert yaml.safe_load(config.read_text()) == {"rules": {"self-repository": {"ignore": ["deploy.yml"]}}}
    done = subprocess.run([tool("zizmor"), "--offline", "--config", str(config), "--format", "json", str(GITHUB)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == []
    audited = re.findall(r"completed (\S+)", done.stderr)
    assert {Path(a).name for a in audited} >= {f.name for f in workflow_files()} | {"dependabot.yml"}


# --- .github: what the workflows promise -----------------------------------------------------

def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def all_steps() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for f in workflow_files():
        for job_id, job in load(f.name)["jobs"].items():
            out += [(f.name, job_id, step) for step in job.get("steps", [])]
    return out


def target_step() -> dict[str, Any]:
    return next(s for s in load("deploy.yml")["jobs"]["target"]["steps"] if s.get("id") == "choose")


@pytest.mark.parametrize("event, ref, chosen, expected", [
    ("push", "refs/heads/dev", "", "dev"),
    ("push", "refs/heads/master", "", "prd"),
    ("workflow_dispatch", "refs/heads/dev", "dev", "dev"),
    ("workflow_dispatch", "refs/heads/master", "prd", "prd"),
    ("workflow_dispatch", "refs/heads/master", "dev", "dev"),
    ("workflow_dispatch", "refs/heads/dev", "prd", None),  # prd only from master
    ("workflow_dispatch", "refs/heads/feature/x", "prd", None),
    ("workflow_dispatch", "refs/heads/dev", "qa", None),
    ("push", "refs/heads/feature/x", "", None),
])
def test_branch_decides_the_environment(tmp_path: Path, event: str, ref: str, chosen: str,
                                        expected: str | None) -> None:
    """Run the real `choose` step's script with the values its env: block maps in."""
    step = target_step()
    assert step["env"] == {"EVENT": "${{ github.event_name }}", "REF": "${{ github.ref }}",
                           "CHOSEN": "${{ inputs.environment }}"}
    output = tmp_path / "github_output"
    output.touch()
    done = subprocess.run([shutil.which("bash") or "bash", "-c", step["run"]], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "EVENT": event, "REF": ref, "CHOSEN": chosen,
                               "GITHUB_OUTPUT": str(output)}, timeout=30)
    if expected is None:
        assert done.returncode != 0
        assert "::error::" in done.stdout
        assert output.read_text() == ""
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert output.read_text() == f"env={expected}\n"


def test_deploy_triggers_are_the_seeds_flow() -> None:
    on = load("deploy.yml")["on"]
    assert set(on) == {"push", "workflow_dispatch"}
    assert on["push"] == {"branches": ["dev", "master"]}
    choice = on["workflow_dispatch"]["inputs"]["environment"]
    assert (choice["type"], choice["options"]) == ("choice", ["dev", "prd"])


def test_deploy_job_uses_the_github_environment_and_oidc_only() -> None:
    wf = load("deploy.yml")
    assert wf["permissions"] == {}  # nothing by default ...
    jobs = wf["jobs"]
    deploy = jobs["deploy"]
    assert deploy["permissions"] == {"contents": "read", "id-token": "write"}  # ... OIDC where it deploys
    assert all("id-token" not in (job.get("permissions") or {}) for name, job in jobs.items() if name != "deploy")
    assert set(deploy["needs"]) == {"target", "test"}
    assert deploy["environment"] == "${{ needs.target.outputs.env }}"  # prd can require approval
    assert deploy["concurrency"] == {"group": "deploy-${{ needs.target.outputs.env }}", "cancel-in-progress": False}
    assert deploy["env"]["ENV"] == "${{ needs.target.outputs.env }}"
    assert jobs["target"]["outputs"]["env"] == "${{ steps.choose.outputs.env }}"
    assert jobs["test"]["uses"] == "./.github/workflows/test.yml"  # the deployed commit is the tested one

    creds = [s for s in deploy["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert len(creds) == 1
    assert creds[0]["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key", "aws-session-token"} & set(creds[0]["with"])


def test_deploy_builds_images_then_deploys_with_credentials_first() -> None:
    steps = load("deploy.yml")["jobs"]["deploy"]["steps"]
    runs = [s.get("run", "") for s in steps]
    uses = [s.get("uses", "") for s in steps]
    creds = next(i for i, u in enumerate(uses) if u.startswith("aws-actions/configure-aws-credentials@"))
    build = next(i for i, r in enumerate(runs) if 'scripts/build_push_image.py --all --env "$ENV"' in r)
    deploy = next(i for i, r in enumerate(runs) if 'python -m asl_export --all --env "$ENV" --deploy' in r)
    assert creds < build < deploy


def test_test_workflow_runs_the_readme_test_command_and_the_drift_check() -> None:
    wf = load("test.yml")
    assert set(wf["on"]) == {"pull_request", "workflow_call"}
    assert wf["on"]["pull_request"] == {"branches": ["dev", "master"]}
    assert wf["permissions"] == {}
    (job,) = wf["jobs"].values()
    assert job["permissions"] == {"contents": "read"}
    withs = {s["uses"].split("@")[0]: s.get("with", {}) for s in job["steps"] if "uses" in s}
    assert job["container"]["image"] == "python:3.11-bookworm"  # Debian + Python 3.11, as make test expects
    assert withs["actions/setup-node"]["node-version"] == "20"
    script = "\n".join(s.get("run", "") for s in job["steps"])
    assert "make test" in script
    assert "python -m esteira validate" in script
    assert "for env in dev prd" in script
    assert '--all --env "$env" --out "$RUNNER_TEMP/asl" --check' in script


def test_no_aws_keys_and_no_secrets_anywhere_in_github() -> None:
    for path in sorted(p for p in GITHUB.rglob("*") if p.is_file()):
        text = path.read_text()
        assert not re.search(r"AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|aws-access-key-id|"
                             r"aws-secret-access-key", text), path
        assert "secrets." not in text, f"{path}: the setup is secrets-free (OIDC); see docs/deploy-ci.md"


def test_every_action_is_pinned_to_a_full_sha_with_its_version() -> None:
    pinned = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+){0,2}$")
    for f in workflow_files():
        for line in f.read_text().splitlines():
            m = re.match(r"\s*(?:- )?uses: (.*)$", line)
            if m and not m.group(1).startswith("./"):
                assert pinned.match(m.group(1)), f"{f.name}: {line.strip()}"


def test_checkouts_keep_no_credentials_and_run_blocks_hold_no_expressions() -> None:
    steps = all_steps()
    checkouts = [s for _, _, s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts and all(s["with"]["persist-credentials"] is False for s in checkouts)
    for name, job, step in steps:
        # ${{ }} in a script is pasted into the shell before it runs (template injection);
        # values reach scripts through env: only.
        assert "${{" not in step.get("run", ""), f"{name}:{job}: {step.get('name')}"


def test_docs_trust_policy_is_valid_json_and_pins_the_environment() -> None:
    doc = (REPO / "docs" / "deploy-ci.md").read_text()
    assert "AWS_DEPLOY_ROLE_ARN" in doc  # the variable deploy.yml reads
    blocks = re.findall(r"```json\n(.*?)```", doc, re.S)
    policy = json.loads(blocks[0])
    (statement,) = policy["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    cond = statement["Condition"]["StringEquals"]
    assert cond["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert cond["token.actions.githubusercontent.com:sub"].endswith(":environment:prd")
