"""One command line: `esteira` (installed by pip) and `python -m esteira` run every subcommand on the
same load + compile path; `python -m asl_export` stays a thin alias of `esteira export`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import PROJECTS

ESTEIRA = Path(sys.executable).parent / "esteira"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120)


def test_the_esteira_command_is_installed_and_knows_its_version() -> None:
    done = run(str(ESTEIRA), "--version")
    assert done.returncode == 0 and done.stdout.startswith("esteira "), done.stderr
    helped = run(str(ESTEIRA), "--help")
    for command in ("validate", "export", "deploy", "schema", "mwaa-bundle"):
        assert command in helped.stdout


def test_esteira_export_and_python_m_asl_export_write_the_same_bytes(tmp_path: Path) -> None:
    ours = run(str(ESTEIRA), "export", "--all", "--env", "prd", "--projects-dir", str(PROJECTS),
               "--out", str(tmp_path / "a"))
    alias = run(sys.executable, "-m", "asl_export", "--all", "--env", "prd", "--projects-dir", str(PROJECTS),
                "--out", str(tmp_path / "b"))
    assert ours.returncode == alias.returncode == 0, ours.stderr + alias.stderr
    written = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.json"))
    assert len(written) == 3 * len(list(PROJECTS.glob("*/config.yaml")))
    for rel in written:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_errors_name_the_command_the_user_typed() -> None:
    for argv, prog in (([str(ESTEIRA), "export"], "esteira export"),
                       ([sys.executable, "-m", "asl_export"], "python -m asl_export"),
                       ([str(ESTEIRA), "deploy", "recsys", "--check"], "esteira deploy")):
        done = run(*argv)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"usage: {prog}") or f"{prog}: error:" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
