"""The committed generated code matches proto/ (regenerate with `python -m serving.codegen`)."""

from __future__ import annotations

from serving.codegen import main


def test_generated_code_is_current() -> None:
    assert main(["--check"]) == 0
