"""The model registry flow: register a candidate, gate it against the champion, move aliases.

Aliases replace MLflow's deprecated stages: `challenger` is the newest candidate of a
project, `champion` the version production scores with. A challenger becomes champion only
when its gate metric is strictly better than the champion's; a tie keeps the champion (a
swap would change production for no measured gain), a challenger without the metric never
passes, and a champion without it is not replaced automatically (nothing says the newcomer is
better): a person decides with `promote --force --reason`. The very first version promotes.

Champions are point-in-time. A promotion records on the version the run date it became
champion for (`esteira.champion_from`), and "the champion as of run date D" is the promoted
version with the greatest champion_from <= D. One date has one champion: promoting another
version for a date already taken withdraws the date from the first (`esteira.champion_withdrawn`).
Scoring and the gate use that, never the alias: an Airflow backfill runs dates in any order,
and a model promoted for a later date must not score, or be the bar for, an earlier one; a
re-run of a date meets the same champion as its first run, so it makes the same decision and
scores the same. The `champion` alias follows the latest run date promoted so far (a backfill
never moves it back): what people and other tools read.

Every move is recorded as tags, so the registry itself answers "why is this in production":
the winner gets `esteira.champion_from` and `esteira.promoted_*`, the version it replaced for
that date `esteira.replaced_by`.

Manual flow (the seed's), against MLFLOW_TRACKING_URI or --tracking-uri:

    python -m ml_jobs.registry --model recsys list
    python -m ml_jobs.registry --model recsys promote 3                      # with the gate
    python -m ml_jobs.registry --model recsys promote 2 --force --reason "rollback: v3 broke scoring"
    python -m ml_jobs.registry --model recsys promote 2 --from 2026-03-02T03:00:00Z ...  # also re-runs of that date
"""

from __future__ import annotations

import argparse
import getpass
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ml_jobs.errors import JobError, MlflowUnavailable, UsageError
from ml_jobs.runtime import first_line, format_instant, log, parse_instant

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
GATE_METRIC_TAG = "esteira.gate_metric"  # on the registered model: the metric its gate compares
GREATER_IS_BETTER_TAG = "esteira.greater_is_better"
CHAMPION_FROM_TAG = "esteira.champion_from"  # on a version: the run date(s) it became champion for
WITHDRAWN_TAG = "esteira.champion_withdrawn"  # on a version: run dates another version took over later
PROMOTED_RUN_ID_TAG = "esteira.promoted_run_id"  # on a version: the run whose gate promoted it


class GateRefused(JobError):
    """`promote` without --force, and the gate said no."""


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def _value(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def gate(metric: str, challenger: float | None, champion: float | None, *, champion_version: str | None,
         greater_is_better: bool = True) -> Decision:
    """Should the challenger replace the champion? Pure, so every rule is testable on its own."""
    new, old = _value(challenger), _value(champion)
    if new is None:
        return Decision(False, f"the challenger has no {metric}: it cannot be judged")
    if champion_version is None:
        return Decision(True, f"first model: no champion for this run date yet ({metric} {new:.4f})")
    if old is None:
        return Decision(False, f"champion v{champion_version} has no {metric} to compare with; "
                               "promote by hand with --force --reason if the challenger should replace it")
    if math.isclose(new, old, rel_tol=1e-9, abs_tol=1e-12):
        return Decision(False, f"tie: {metric} {new:.4f} equals champion v{champion_version}'s; the champion stays")
    better = new > old if greater_is_better else new < old
    word = "better" if better else "not better"
    return Decision(better, f"{metric} {new:.4f} is {word} than champion v{champion_version}'s {old:.4f}")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Promotion:
    """`version` is champion for the run dates from `start` until the next promotion after it."""

    start: datetime
    version: ModelVersion

    @property
    def order(self) -> tuple[datetime, int]:
        """Start first; two starts at one instant happen only with legacy tags: the newer version."""
        return self.start, int(self.version.version)


def promotions(mv: ModelVersion) -> list[Promotion]:
    """The promotions a version records (usually one; a rollback by hand adds another).

    A version promoted before `esteira.champion_from` existed counts from its own run date: the
    gate that promoted it ran in the run that trained it.
    """
    tags = mv.tags or {}
    raw = tags.get(CHAMPION_FROM_TAG)
    if raw is None and tags.get("esteira.promoted_at") and tags.get("esteira.run_date"):
        raw = tags["esteira.run_date"]
    if not raw:
        return []
    try:
        starts = [parse_instant(value, what=CHAMPION_FROM_TAG) for value in raw.split(",") if value.strip()]
    except UsageError:
        raise JobError(f"version {mv.version} of {mv.name}: {CHAMPION_FROM_TAG}={raw!r} is not a comma-separated "
                       "list of ISO 8601 instants; fix the tag") from None
    return [Promotion(start, mv) for start in starts]


def champion_as_of(versions: Iterable[ModelVersion], as_of: datetime | None) -> ModelVersion | None:
    """The version champion for run date `as_of` (None: for the latest run date promoted so far).

    Pure, so the rule is testable without MLflow: the latest promotion starting at or before `as_of`.
    """
    found = [p for mv in versions for p in promotions(mv) if as_of is None or p.start <= as_of]
    return max(found, key=lambda p: p.order).version if found else None


def model_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of `name` with its tags (all pages; none when the model does not exist yet)."""
    import mlflow

    found: list[ModelVersion] = []
    token: str | None = None
    try:
        while True:
            page = client.search_model_versions(f"name='{name}'", page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                return found
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return []


def champion_version(client: MlflowClient, name: str, as_of: datetime | None = None) -> ModelVersion | None:
    """The champion as of run date `as_of` (None: as of the latest run date promoted so far)."""
    return champion_as_of(model_versions(client, name), as_of)


def _sync_alias(client: MlflowClient, name: str) -> None:
    """Point `champion` at the champion of the latest run date: promoting an earlier date leaves it."""
    latest = champion_version(client, name)
    aliases = client.get_registered_model(name).aliases or {}
    if latest is not None and str(aliases.get(CHAMPION)) != str(latest.version):
        client.set_registered_model_alias(name, CHAMPION, latest.version)


def _append(existing: str | None, value: str) -> str:
    """A comma-separated tag value with `value` added once."""
    items = [item for item in (existing or "").split(",") if item]
    return ",".join(items if value in items else [*items, value])


def register(client: MlflowClient, name: str, model_uri: str, *, metric: str, greater_is_better: bool = True,
             tags: dict[str, str], description: str = "") -> ModelVersion:
    """A new version of the project's model (the registered model is created on first use).

    A retried step registers nothing twice: a version already made from `model_uri` is reused.
    """
    import mlflow

    try:
        for existing in client.search_model_versions(f"name='{name}'"):
            if existing.source == model_uri:
                log(f"register: {model_uri} is already version {existing.version} of {name}")
                return existing
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    version = mlflow.register_model(model_uri, name, tags=tags)
    client.set_registered_model_tag(name, GATE_METRIC_TAG, metric)
    client.set_registered_model_tag(name, GREATER_IS_BETTER_TAG, str(greater_is_better).lower())
    if description:
        client.update_model_version(name, version.version, description=description)
    return version


def promote(client: MlflowClient, name: str, version: str, *, champion_from: datetime, reason: str,
            forced: bool = False, by: str = "pipeline", run_id: str | None = None) -> str | None:
    """Make `version` champion for the run dates from `champion_from` on; tag both ends of the move.

    The alias then follows the latest run date promoted so far. Returns the version it replaced
    for `champion_from` (None: there was none, or it already was `version`).
    """
    versions = model_versions(client, name)
    previous = champion_as_of(versions, champion_from)
    if previous is not None and str(previous.version) == str(version):
        return None
    start = format_instant(champion_from)
    for other in versions:  # one champion per date: a version that had this very date gives it up
        had = [p.start for p in promotions(other)]
        kept = [t for t in had if t != champion_from]
        if str(other.version) != str(version) and len(kept) < len(had):
            client.set_model_version_tag(name, other.version, CHAMPION_FROM_TAG, ",".join(map(format_instant, kept)))
            client.set_model_version_tag(name, other.version, WITHDRAWN_TAG,
                                         _append((other.tags or {}).get(WITHDRAWN_TAG), start))
    mv = client.get_model_version(name, version)
    starts = ",".join(format_instant(p.start) for p in promotions(mv))  # keeps a legacy promotion's date
    when = now()
    tags = {CHAMPION_FROM_TAG: _append(starts, start), "esteira.promoted_at": when,
            "esteira.promotion_reason": reason, "esteira.promotion_forced": str(forced).lower(),
            "esteira.promoted_by": by}
    if run_id:
        tags[PROMOTED_RUN_ID_TAG] = run_id
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if previous is not None:
        replaced_by = _append((previous.tags or {}).get("esteira.replaced_by"), str(version))
        client.set_model_version_tag(name, previous.version, "esteira.replaced_by", replaced_by)
        client.set_model_version_tag(name, previous.version, "esteira.replaced_at", when)
    _sync_alias(client, name)
    return str(previous.version) if previous is not None else None


def challenge(client: MlflowClient, name: str, version: str, *, run_date: str, run_id: str, metric: str,
              challenger_value: float | None, evaluate: Callable[[str], float],
              greater_is_better: bool = True) -> dict[str, Any]:
    """The pipeline's gate: score the champion as of `run_date` on the SAME held-out data, decide,
    then move aliases.

    The bar is the champion as of the run date, not the alias, so a backfill or a re-run of a date
    faces what that date's first run faced (a re-run's identical model ties with the version its
    first run promoted and changes nothing). Nothing moves until the decision is made, so a
    failure before it leaves both aliases where they were. Returns what the step's marker records.
    """
    as_of = parse_instant(run_date)
    current = champion_version(client, name, as_of)
    if current is not None and str(current.version) == str(version):  # a retry after the promotion
        log(f"gate: v{version} is already {CHAMPION} as of {run_date}")
        return {"version": str(version), "promoted": True, "reason": "already champion", "as_of": run_date,
                "champion_before": str(current.version), "champion": str(version), "replaced": None}
    champion_value: float | None = None
    if current is not None:
        try:
            champion_value = evaluate(f"models:/{name}/{current.version}")
        except Exception as exc:
            log(f"warning: champion v{current.version} could not be evaluated on this data: {first_line(exc)}")
    decision = gate(metric, challenger_value, champion_value,
                    champion_version=current.version if current else None, greater_is_better=greater_is_better)
    client.set_registered_model_alias(name, CHALLENGER, version)
    gate_tags = {"esteira.gate.metric": metric, "esteira.gate.decision": "promoted" if decision.promote else "kept",
                 "esteira.gate.reason": decision.reason, "esteira.gate.as_of": run_date,
                 "esteira.gate.champion_version": str(current.version) if current else "none",
                 "esteira.gate.champion_value": "none" if champion_value is None else repr(champion_value)}
    for key, value in gate_tags.items():
        client.set_model_version_tag(name, version, key, value)
    replaced = (promote(client, name, version, champion_from=as_of, reason=decision.reason, run_id=run_id)
                if decision.promote else None)
    log(f"gate: {'PROMOTED' if decision.promote else 'kept champion'} as of {run_date} - {decision.reason}")
    before = str(current.version) if current else None
    return {"version": str(version), "promoted": decision.promote, "reason": decision.reason, "as_of": run_date,
            "champion_before": before, "champion": str(version) if decision.promote else before, "replaced": replaced,
            "challenger_" + metric: challenger_value, "champion_" + metric: champion_value}


# ---------------------------------------------------------------------------------------------
# the CLI


def recorded_metrics(client: MlflowClient, mv: ModelVersion) -> dict[str, float]:
    """The metrics of the run that produced a version (what its evaluation measured)."""
    if not mv.run_id:
        return {}
    return dict(client.get_run(mv.run_id).data.metrics)


def _gate_settings(client: MlflowClient, name: str, metric: str | None) -> tuple[str, bool]:
    model = client.get_registered_model(name)
    chosen = metric or model.tags.get(GATE_METRIC_TAG)
    if not chosen:
        raise UsageError(f"model {name} records no gate metric ({GATE_METRIC_TAG}); pass --metric")
    return chosen, model.tags.get(GREATER_IS_BETTER_TAG, "true") == "true"


def list_versions(client: MlflowClient, name: str, metric: str | None) -> str:
    chosen, greater = _gate_settings(client, name, metric)
    model = client.get_registered_model(name)
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version), reverse=True)
    lines = [f"{name}: gate metric {chosen} ({'higher' if greater else 'lower'} is better)",
             f"{'version':>7}  {'aliases':<20} {chosen:>12}  {'run date':<20}  notes; other metrics"]
    for mv in versions:
        metrics = recorded_metrics(client, mv)
        value = metrics.pop(chosen, None)
        shown = "-" if value is None else f"{value:.4f}"
        tags = mv.tags or {}
        notes = []
        if tags.get(CHAMPION_FROM_TAG):
            notes.append(f"champion from {tags[CHAMPION_FROM_TAG]};")
        if tags.get("esteira.replaced_by"):
            notes.append(f"replaced by v{tags['esteira.replaced_by']};")
        if tags.get("esteira.promotion_forced") == "true":
            notes.append(f"forced: {tags.get('esteira.promotion_reason', '')};")
        notes += [f"{k}={v:.4g}" for k, v in sorted(metrics.items())]
        alias_text = ",".join(sorted(aliases.get(str(mv.version), []))) or "-"
        lines.append(f"{mv.version:>7}  {alias_text:<20} {shown:>12}  {tags.get('esteira.run_date', '-'):<20}  "
                     + "  ".join(notes))
    return "\n".join(lines)


def promote_by_hand(client: MlflowClient, name: str, version: str, *, force: bool, reason: str | None,
                    metric: str | None, champion_from: str | None = None) -> str:
    """The manual promotion: the gate on each version's recorded metric, or forced with a reason.

    It counts from `champion_from` (default: now), so runs of earlier dates, re-runs included,
    keep the champion they had; pass that date's RUN_DATE to change them too.
    """
    mv = client.get_model_version(name, version)
    start = parse_instant(champion_from, what="--from") if champion_from else datetime.now(UTC)
    current = champion_version(client, name, start)
    if current is not None and str(current.version) == str(mv.version):
        return f"v{version} is already {CHAMPION} of {name} as of {format_instant(start)}; nothing to do"
    who = _user()
    if force:
        if not reason or not reason.strip():
            raise UsageError("--force needs --reason TEXT: the reason is recorded on the version")
        replaced = promote(client, name, str(mv.version), champion_from=start, reason=reason.strip(), forced=True,
                           by=who)
    else:
        chosen, greater = _gate_settings(client, name, metric)
        champion_value = recorded_metrics(client, current).get(chosen) if current else None
        decision = gate(chosen, recorded_metrics(client, mv).get(chosen), champion_value,
                        champion_version=current.version if current else None, greater_is_better=greater)
        if not decision.promote:
            raise GateRefused(f"v{version} not promoted: {decision.reason}")
        text = decision.reason + (f" ({reason.strip()})" if reason and reason.strip() else "")
        replaced = promote(client, name, str(mv.version), champion_from=start, reason=text, forced=False, by=who)
    after = f"; v{replaced} tagged replaced_by={version}" if replaced else ""
    alias = str((client.get_registered_model(name).aliases or {}).get(CHAMPION))
    if alias != str(mv.version):
        after += f"; the {CHAMPION} alias stays on v{alias}, champion from a later run date"
    return f"v{version} is now {CHAMPION} of {name} for run dates from {format_instant(start)}{after}"


def _user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:
        return "unknown"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ml_jobs.registry", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                    help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)")
    ap.add_argument("--model", default=os.environ.get("MLFLOW_EXPERIMENT_NAME"),
                    help="registered model = the project name (default: MLFLOW_EXPERIMENT_NAME)")
    ap.add_argument("--metric", help="compare on this metric instead of the one the model records")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every version with its metrics, aliases and promotion notes")
    p = sub.add_parser("promote", help="make VERSION the champion (gate, or --force --reason)")
    p.add_argument("version")
    p.add_argument("--force", action="store_true", help="skip the gate; needs --reason")
    p.add_argument("--reason", help="why; recorded as the tag esteira.promotion_reason")
    p.add_argument("--from", dest="champion_from", metavar="RUN_DATE",
                   help="champion for run dates from this ISO 8601 instant on (default: now); earlier dates keep "
                        "theirs")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if not args.tracking_uri:
            raise UsageError("no tracking URI: set MLFLOW_TRACKING_URI or pass --tracking-uri "
                             "(local: sqlite:///$PWD/.esteira/mlflow.db)")
        if not args.model:
            raise UsageError("no model: pass --model PROJECT (or set MLFLOW_EXPERIMENT_NAME)")
        from ml_jobs.tracking import MlflowException, open_client

        client = open_client(args.tracking_uri, create=False)
        try:
            if args.command == "list":
                print(list_versions(client, args.model, args.metric))
            else:
                print(promote_by_hand(client, args.model, args.version, force=args.force, reason=args.reason,
                                      metric=args.metric, champion_from=args.champion_from))
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise UsageError(first_line(exc)) from None
            raise MlflowUnavailable(f"MLflow: {first_line(exc)}") from None
    except JobError as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
