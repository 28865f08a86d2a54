"""Each project's DagSpec: from the compile cache when none of its inputs changed, else compiled.

A DAG-processor parse reads each config.yaml's bytes and hashes them with environments.yaml's,
the settings and esteira's code (esteira.compile_cache). On a hit, that is all: no YAML parsing,
no validation, no planning, and the config model is never imported. On a miss the project is
compiled from exactly the bytes that were hashed (a file edited meanwhile is a later key, never a
wrong entry), and the result is stored: the spec, or the config error the user must fix (a
broken project costs its validation once per change too). Failures esteira did not foresee are
not stored, so they are retried on the next parse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from esteira.airflow.dag_spec import SPEC_VERSION, DagSpec
from esteira.compile_cache import CompileCache, cache_key, code_fingerprint
from esteira.errors import ConfigError, unexpected_error
from esteira.settings import Settings
from esteira.yaml_source import read_config_bytes

if TYPE_CHECKING:
    from esteira.plan import Target


@dataclass(frozen=True)
class Broken:
    """A project that cannot be built, with the message its error DAG shows."""

    folder: str
    error: str
    stored: bool = True  # a user's mistake, decided by the hashed inputs alone: cached


class ProjectSpecs:
    """DagSpecs for one settings: one per DAG-file parse."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache = CompileCache(settings.cache_dir)
        self._target: Target | ConfigError | None = None
        self._target_stored = True  # is the target's error decided by environments.yaml's bytes alone
        try:
            self.env_bytes: bytes | None = read_config_bytes(settings.environments_file)
        except ConfigError as exc:  # missing or unreadable: every project says so
            self.env_bytes, self._target, self._target_stored = None, exc, False
        self._settings_key = json.dumps([
            SPEC_VERSION, settings.backend, settings.env, settings.local_mlflow_tracking_uri,
            str(settings.projects_dir.resolve()), str(settings.environments_file.resolve())])

    def spec(self, config_file: Path, *, cached: bool = True) -> DagSpec | Broken:
        """The project's DagSpec or why it is broken; `cached` False compiles whatever the cache holds
        (the factory's second chance when a cached spec does not build: a damaged entry)."""
        folder = config_file.parent.name
        try:
            raw = read_config_bytes(config_file)
        except ConfigError as exc:
            return Broken(folder, str(exc), stored=False)
        key = cache_key(self._settings_key, code_fingerprint(), folder, raw, self.env_bytes)
        slot = str(config_file.absolute())
        hit = self.cache.get(slot, key) if cached else None
        if isinstance(hit, dict) and isinstance(hit.get("error"), str):
            return Broken(folder, hit["error"])
        if isinstance(hit, dict) and isinstance(hit.get("spec"), dict):
            return hit["spec"]  # type: ignore[no-any-return]
        result = self._compile(config_file, raw)
        if isinstance(result, Broken):
            if result.stored:
                self.cache.put(slot, key, {"error": result.error})
        else:
            self.cache.put(slot, key, {"spec": result})
        return result

    def _compile(self, config_file: Path, raw: bytes) -> DagSpec | Broken:
        # the config model and the planner: imported on the first miss only
        from esteira.airflow.dag_spec import dag_spec
        from esteira.config import load_project
        from esteira.plan import build_plan

        folder = config_file.parent.name
        target = self._load_target()
        if isinstance(target, ConfigError):
            return Broken(folder, str(target), stored=self._target_stored)
        try:
            return dag_spec(build_plan(load_project(config_file, raw), target))
        except ConfigError as exc:
            return Broken(folder, str(exc))
        except Exception as exc:  # anything else is still this one project's: see esteira.airflow.factory
            return Broken(folder, str(unexpected_error(config_file, exc)), stored=False)

    def _load_target(self) -> Target | ConfigError:
        if self._target is None:
            from esteira.environments import load_environments
            from esteira.plan import Target

            file = self.settings.environments_file
            try:
                environments = load_environments(file, self.env_bytes)
                self._target = (
                    Target.local(environments, self.settings.local_mlflow_tracking_uri)
                    if self.settings.backend == "local" else Target.aws_env(environments, self.settings.env))
            except ConfigError as exc:
                self._target = exc
            except Exception as exc:
                self._target, self._target_stored = unexpected_error(file, exc), False
        return self._target
