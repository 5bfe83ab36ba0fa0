"""What of a command line is shown: the values of options whose names say they hold a secret (`--password`,
`--api-token`, `db.secret=`, `aws_secret_access_key=`) are shown as `***` in logs and summaries. The
task still gets them: its hyperparams.Args and its argv are what was given."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

MASK = "***"
# Anywhere in a name: these say its value is a secret (`dbpassword`, `secretKey`, `client_secret_id`).
_ANYWHERE = ("password", "passwd", "passphrase", "secret", "credential")
# As the name's last word only (`api_token`, `sessionToken`, `api-key`): `pad_token_id`, `token_type` and
# `max_token_length` name no secret.
_LAST_WORDS = frozenset({"pwd", "token", "apikey", "credentials"})
# `bos_token`, `pad_token`: a model's special tokens, text rather than secrets
_TEXT_TOKENS = frozenset({"bos", "eos", "pad", "unk", "sep", "cls", "mask", "special", "start", "end"})
_KEY_OWNERS = frozenset({"api", "private", "access", "secret", "signing", "encryption"})  # `<owner>_key`


def secret_name(name: str) -> bool:
    """An option or parameter name (`--api-token`, `db.password`, `AWS_SECRET_ACCESS_KEY`, `--secretKey`)
    that says its value is a secret."""
    bare = name.lstrip("-+~")
    if any(word in bare.lower() for word in _ANYWHERE):
        return True
    words = [word.lower() for word in re.split(r"[-_.]+|(?<=[a-z0-9])(?=[A-Z])", bare) if word]
    if not words:
        return False
    last, before = words[-1], (words[-2] if len(words) > 1 else "")
    if last == "token" and before in _TEXT_TOKENS:
        return False
    return last in _LAST_WORDS or (last == "key" and before in _KEY_OWNERS)


def masked(argv: Sequence[str]) -> list[str]:
    """`argv` with the values of secret-named options replaced: `--password X`, `--password=X`, and
    `key=value` words (Hydra overrides, `--args` pairs)."""
    shown: list[str] = []
    hide_next = False
    for word in argv:
        if hide_next:
            hide_next = False
            if not _option(word):  # a flag's (`--use-auth --lr 0.1`): the next word is no value of it
                shown.append(MASK)
                continue
        name, equals, value = word.partition("=")
        if equals and secret_name(name):
            shown.append(f"{name}={MASK}" if value else word)
        elif word.startswith("-") and not equals and secret_name(word):
            shown.append(word)
            hide_next = True
        else:
            shown.append(word)
    return shown


def _option(word: str) -> bool:
    """An option word, not a value (a negative number is a value)."""
    return word.startswith("-") and not re.fullmatch(r"-[0-9.][0-9.e+-]*", word)


def shown_line(argv: Sequence[str]) -> str:
    """The command line as a shell would read it, secrets masked (the mask itself left unquoted)."""
    return " ".join(
        word if word == MASK or word.endswith(f"={MASK}") else shlex.quote(word) for word in masked(argv)
    )
