"""The one exception type for what the user must fix (pre-commit's FatalError)."""

from __future__ import annotations


class UserError(Exception):
    """Something the user must fix: printed as one line (plus a hint), exit code 1 (2 for usage)."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "", *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class APICallError(UserError):
    """A ClearML API call answered with an error envelope."""

    def __init__(self, endpoint: str, code: int, subcode: int, msg: str) -> None:
        super().__init__(f"{endpoint} failed: {msg} (HTTP {code}/{subcode})")
        self.endpoint = endpoint
        self.code = code
        self.subcode = subcode
        self.msg = msg


class NoAnswer(UserError):
    """The server took the connection (or dropped packets) but did not answer in time: trying again is
    no use to a person waiting at a terminal."""
