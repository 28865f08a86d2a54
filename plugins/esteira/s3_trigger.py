"""An S3 "Object Created" event as a pipeline's trigger: the rules, the EventBridge pattern, the run values.

One definition for every path an event takes, so they cannot disagree on which objects start a run
or on what the run is told:

* `event_pattern` is the EventBridge rule's pattern (the stack's rule; it feeds Step Functions and
  the SQS queue Airflow watches), and `key_matches` is the same predicate in Python, for
  `esteira trigger` (tests hold the two equal through moto's EventBridge pattern matcher);
* `INPUT_TRANSFORMER` hands Step Functions the event's id, time, bucket and key, and
  `run_values_from_event` reads the very same four from the raw event on the Airflow side.

Imports nothing of esteira's config model: the Airflow side imports it when a run starts.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

# The keys of an execution's input (and of an Airflow run's conf) that carry a triggered run's values;
# run_date and run_id are esteira.plan's INPUT_RUN_DATE/INPUT_RUN_ID.
INPUT_TRIGGER_BUCKET, INPUT_TRIGGER_KEY = "trigger_bucket", "trigger_key"
RUN_KEYS = ("run_date", "run_id", INPUT_TRIGGER_BUCKET, INPUT_TRIGGER_KEY)
ENV_PLACEHOLDER = "{env}"  # a bucket per environment: `rentcars-landing-{env}`
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
EVENT_SOURCE, EVENT_DETAIL_TYPE = "aws.s3", "Object Created"

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# S3's reserved bucket prefixes and suffixes (general purpose buckets; `--x-s3` is a directory bucket,
# which sends no EventBridge events)
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# EventBridge -> the state machine's input. A placeholder outside quotes in a JSON template is written
# as a JSON value (a string quoted and escaped), so a key holding quotes or backslashes stays valid JSON.
INPUT_PATHS = {"id": "$.id", "time": "$.time", "bucket": "$.detail.bucket.name", "key": "$.detail.object.key"}
INPUT_TEMPLATE = ('{"run_date":<time>,"run_id":<id>,"' + INPUT_TRIGGER_BUCKET + '":<bucket>,"'
                  + INPUT_TRIGGER_KEY + '":<key>}')
INPUT_TRANSFORMER = {"InputPathsMap": INPUT_PATHS, "InputTemplate": INPUT_TEMPLATE}


def bucket_problem(name: str) -> str | None:
    """Why S3 would refuse `name` as a general purpose bucket's name (after `{env}` is filled), or None."""
    if not _BUCKET.fullmatch(name):
        return (f"{name!r} is not an S3 bucket name: 3-63 lower-case letters, digits, '.' and '-', starting and "
                "ending with a letter or digit")
    if ".." in name:
        return f"{name!r} is not an S3 bucket name: two adjacent dots"
    try:
        ipaddress.IPv4Address(name)
        return f"{name!r} is not an S3 bucket name: it is formatted as an IP address"
    except ValueError:
        pass
    for prefix in _BUCKET_PREFIXES:
        if name.startswith(prefix):
            return f"{name!r} is not an S3 bucket name: the prefix {prefix!r} is reserved by S3"
    for suffix in _BUCKET_SUFFIXES:
        if name.endswith(suffix):
            return f"{name!r} is not an S3 bucket name: the suffix {suffix!r} is reserved by S3"
    return None


def bucket_for(template: str, env: str) -> str:
    """The bucket of an environment: `{env}` replaced by dev, prd or local."""
    return template.replace(ENV_PLACEHOLDER, env)


def check_bucket(template: str) -> str:
    """Pydantic's check of `trigger.s3.bucket`: a valid name in every environment."""
    for env in ("dev", "prd", "local"):
        problem = bucket_problem(bucket_for(template, env))
        if problem:
            shown = f" (in {env})" if ENV_PLACEHOLDER in template else ""
            raise ValueError(problem + shown)
    return template


def check_key_part(value: str) -> str:
    """Pydantic's check of `trigger.s3.prefix`/`suffix`: text an S3 key and an EventBridge pattern can hold."""
    if _CONTROL.search(value):
        raise ValueError("holds a control character (a line break, a tab, NUL...); S3 keys written by tools "
                         "do not, and EventBridge would compare the text byte for byte")
    if len(value.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"is {len(value.encode())} bytes; an S3 key is at most {MAX_KEY_BYTES}")
    if "${" in value:  # the stack's rule holds it as is; CloudFormation tools read ${...} as a reference
        raise ValueError(f"{value!r} holds '${{', which CloudFormation tools read as a reference in the stack's "
                         "EventBridge rule; watch a prefix or suffix without it")
    return value


def check_prefix(value: str) -> str:
    check_key_part(value)
    if value.startswith("/"):
        raise ValueError(f"{value!r} starts with '/', but S3 keys do not (s3://bucket/incoming/x.csv has the key "
                         f"'incoming/x.csv'): write {value.lstrip('/')!r}")
    return value


def _wildcard_literal(text: str) -> str:
    """Text as a literal inside an EventBridge `wildcard` filter: `*` and `\\` escaped."""
    return text.replace("\\", "\\\\").replace("*", "\\*")


def key_filter(prefix: str, suffix: str) -> dict[str, str] | None:
    """The filter on detail.object.key. EventBridge takes one of prefix or suffix per filter (and the
    entries of a list are OR-ed), so both together are one `wildcard`: `<prefix>*<suffix>`."""
    if prefix and suffix:
        return {"wildcard": f"{_wildcard_literal(prefix)}*{_wildcard_literal(suffix)}"}
    if prefix:
        return {"prefix": prefix}
    if suffix:
        return {"suffix": suffix}
    return None


def event_pattern(bucket: str, prefix: str, suffix: str) -> dict[str, Any]:
    """The EventBridge rule's pattern: S3 "Object Created" events of this bucket whose key matches."""
    detail: dict[str, Any] = {"bucket": {"name": [bucket]}}
    key = key_filter(prefix, suffix)
    if key is not None:
        detail["object"] = {"key": [key]}
    return {"source": [EVENT_SOURCE], "detail-type": [EVENT_DETAIL_TYPE], "detail": detail}


def key_matches(key: str, prefix: str, suffix: str) -> bool:
    """The pattern's test of a key, in Python: it starts with prefix and, after it, ends with suffix."""
    return key.startswith(prefix) and key.endswith(suffix) and len(key) >= len(prefix) + len(suffix)


def key_problem(key: str, prefix: str, suffix: str) -> str | None:
    """Why an object of this key would not start a run (for `esteira trigger`), or None."""
    if not key:
        return "the key is empty"
    if len(key.encode()) > MAX_KEY_BYTES:
        return f"the key is {len(key.encode())} bytes; S3 keys are at most {MAX_KEY_BYTES}"
    if not key_matches(key, prefix, suffix):
        wanted = " and ".join(part for part in (f"start with {prefix!r}" if prefix else "",
                                                f"end with {suffix!r}" if suffix else "") if part)
        return f"the key {key!r} would not start a run: the trigger's keys {wanted}"
    return None


def run_values_from_event(event: dict[str, Any]) -> dict[str, str]:
    """run_date, run_id, trigger_bucket and trigger_key of a raw S3 "Object Created" event, as
    INPUT_TRANSFORMER hands them to Step Functions: the event's time, its id, the bucket and the key."""
    try:
        values = {"run_date": event["time"], "run_id": event["id"],
                  INPUT_TRIGGER_BUCKET: event["detail"]["bucket"]["name"],
                  INPUT_TRIGGER_KEY: event["detail"]["object"]["key"]}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not an S3 EventBridge event (no {exc}): {json.dumps(event)[:300]}") from None
    if not all(isinstance(value, str) for value in values.values()):
        raise ValueError(f"not an S3 EventBridge event (a value is not text): {json.dumps(values)[:300]}")
    return values
