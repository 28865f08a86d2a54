"""The config's e-mail addresses are pydantic's EmailStr: same accepted values, same stored form,
same errors. esteira.model checks a plain address itself (one regex) and hands every other one to
EmailStr's own validation, so that an export does not import email-validator (its Unicode regexes
cost a tenth of the command's time)."""

from __future__ import annotations

import random
import subprocess
import sys
from typing import Any

import email_validator
import pytest
from pydantic import ConfigDict, EmailStr, TypeAdapter, ValidationError

from conftest import REPO
from esteira.model import Email

STRICT = ConfigDict(strict=True)
OURS, PYDANTIC = TypeAdapter(Email, config=STRICT), TypeAdapter(EmailStr, config=STRICT)

DOMAIN_196 = "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".com"
ADDRESSES = [
    # plain: taken by the fast path
    "ml-team@rentcars.com", "a@b.co", "first.last+tag@sub.example.com", "x_y@a-b.c-d.org", "1@2a.io",
    "a" * 64 + "@x.com", "a" * 65 + "@x.com", "a" * 57 + "@" + DOMAIN_196, "a" * 58 + "@" + DOMAIN_196,
    "a@" + "b" * 63 + ".com", "a@" + "b" * 64 + ".com", "a@x." + "c" * 63, "a@x." + "c" * 64,
    # normalised by email-validator (case, Unicode, mailbox names), or not plain enough
    "ML-Team@Rentcars.COM", "ml@Example.com", "Support@example.com", "support@example.com", "INFO@x.com",
    "josé@x.com", "jose\u0301@x.com", "a@bücher.de", "a@BÜCHER.de", "a@xn--bcher-kva.ch", "a@x.c", "a@x.c1",
    "o'brien@x.com", "a!#$%&'*/=?^`{|}~@x.com", "a@1.com", "a@x.co1m",
    # display names and spaces: EmailStr takes some
    "Team <ml@x.com>", '"Team" <ml@x.com>', "<ml@x.com>", " ml@x.com ", "ml@x.com\n", "ml@x.com\r",
    "a b@x.com", "a\tb@x.com",
    # refused
    "", "@x.com", "a@", "not-an-email", "ml-team at rentcars", "a@b@c.com", '"quoted"@x.com', "a@[127.0.0.1]",
    ".a@x.com", "a.@x.com", "a..b@x.com", "a@x..com", "a@.x.com", "a@x.com.", "a@-a.com", "a@a-.com",
    "a@a.-com", "a@ab--cd.com", "a@x.123", "a@x", "a@localhost", "a＠x.com", "a﹫x.com", "a@x.c-m",
    "a" * 3000 + "@x.com",
    *(f"a@{d}" for d in email_validator.SPECIAL_USE_DOMAIN_NAMES),
    *(f"a@x.{d}" for d in email_validator.SPECIAL_USE_DOMAIN_NAMES),
    *(f"a@x.{d.upper()}" for d in email_validator.SPECIAL_USE_DOMAIN_NAMES),
]


def outcome(adapter: TypeAdapter[Any], value: object) -> tuple[str, Any]:
    try:
        return "ok", adapter.validate_python(value)
    except ValidationError as exc:
        return "error", exc.errors(include_url=False)


@pytest.mark.parametrize("value", [*ADDRESSES, 5, None, b"ml@x.com", ["ml@x.com"]], ids=repr)
def test_an_address_is_judged_as_email_str_judges_it(value: object) -> None:
    assert outcome(OURS, value) == outcome(PYDANTIC, value)


def test_random_addresses_are_judged_as_email_str_judges_them() -> None:
    """Near the fast path's edges (its characters, dots and dashes anywhere), and beyond them."""
    rng = random.Random(15)
    tlds = ["", ".com", ".c0m", ".c", ".test", ".Com", ".xn--p1ai"]
    for local_chars, domain_chars in (("a0_+-.", "ab0-."), ("aZ0-._+@é'", "aZ0-._+@é'")):
        for _ in range(2000):
            local = "".join(rng.choice(local_chars) for _ in range(rng.randint(0, 6)))
            domain = "".join(rng.choice(domain_chars) for _ in range(rng.randint(0, 8)))
            value = f"{local}@{domain}{rng.choice(tlds)}"
            assert outcome(OURS, value) == outcome(PYDANTIC, value), value


def test_the_schema_says_email() -> None:
    assert OURS.json_schema() == PYDANTIC.json_schema() == {"format": "email", "type": "string"}


def test_exporting_the_examples_does_not_import_email_validator(tmp_path: Any) -> None:
    code = ("import sys; from esteira.export_command import main; "
            f"code = main(['--all', '--out', {str(tmp_path)!r}]); "
            "assert code == 0, code; assert 'email_validator' not in sys.modules, 'imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
