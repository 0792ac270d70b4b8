"""Settings of ``seqboltz serve`` from flags, environment variables and a config file.

Precedence, highest first: a flag on the command line, an environment variable, the config
file, the flag's default. Every option ``--some-name`` of the parser is also the environment
variable ``SEQBOLTZ_SOME_NAME`` and the config-file key ``some_name`` (``some-name`` works
too). The config file is ``--config PATH`` or ``$SEQBOLTZ_CONFIG``: one flat TOML table
(``.toml``; Python 3.11's ``tomllib``, or ``tomli`` on 3.10) or JSON object (``.json``). An
empty environment variable counts as unset. A key the parser does not know, a value of the
wrong type, or an unreadable file is one line on stderr and exit status 2. Only the standard
library is used, so a serving install stays free of the training stack.

>>> import argparse
>>> p = argparse.ArgumentParser(prog="demo")
>>> _ = p.add_argument("--port", type=int, default=50051)
>>> parse_settings(p, [], environ={"SEQBOLTZ_PORT": "6000"}).port
6000
>>> parse_settings(p, ["--port", "7000"], environ={"SEQBOLTZ_PORT": "6000"}).port
7000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ENV_PREFIX", "env_name", "parse_settings", "settable_options"]

ENV_PREFIX = "SEQBOLTZ_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_FLAGS = (argparse._StoreTrueAction, argparse._StoreFalseAction)


class _SettingError(ValueError):
    """A setting from the environment or the config file that the parser cannot take."""


def env_name(dest: str) -> str:
    """The environment variable of an option: ``metrics_host`` → ``SEQBOLTZ_METRICS_HOST``."""
    return ENV_PREFIX + dest.upper()


def settable_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The options that an environment variable or the config file may set, by ``dest``.

    Single-valued options (``store`` with ``nargs`` None or ``?``) and on/off flags
    (``store_true``/``store_false``); ``--help`` and ``--config`` are flags only.
    """
    out: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "config"):
            continue
        if isinstance(action, _FLAGS) or (
            type(action) is argparse._StoreAction and action.nargs in (None, "?")
        ):
            out[action.dest] = action
    return out


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    """One value from a file (typed) or the environment (a string) as the option takes it."""
    if isinstance(action, _FLAGS):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _SettingError(f"{where}: expected true or false, got {value!r}")
    if isinstance(value, (bool, dict, list)):
        raise _SettingError(f"{where}: expected one value, got {value!r}")
    convert = action.type if callable(action.type) else str
    try:
        result = convert(str(value))
    except argparse.ArgumentTypeError as exc:  # the type's own message says what it expects
        raise _SettingError(f"{where}: {exc}") from None
    except (TypeError, ValueError):
        name = getattr(convert, "__name__", "value")
        raise _SettingError(f"{where}: invalid {name} value {value!r}") from None
    if action.choices is not None and result not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise _SettingError(f"{where}: {value!r} is not one of {choices}")
    return result


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _SettingError(f"config file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".json":
            table = json.loads(data)
        elif path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                try:
                    import tomli as tomllib
                except ImportError:
                    raise _SettingError(
                        f"config file {path}: TOML needs Python 3.11+ or `pip install tomli`"
                    ) from None
            table = tomllib.loads(data.decode())
        else:
            raise _SettingError(f"config file {path}: use a .toml or .json file")
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, TOMLDecodeError
        raise _SettingError(f"config file {path}: {exc}") from None
    if not isinstance(table, dict):
        raise _SettingError(f"config file {path}: expected a table of settings")
    return table


def _file_settings(path: Path, options: Mapping[str, argparse.Action]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in _read_file(path).items():
        dest = str(key).replace("-", "_")
        if dest not in options:
            known = ", ".join(sorted(options))
            raise _SettingError(f"config file {path}: unknown setting {key!r} (known: {known})")
        values[dest] = _convert(options[dest], value, f"config file {path}: {key}")
    return values


def parse_settings(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> argparse.Namespace:
    """Parse ``argv`` with ``parser`` after filling its defaults from the file and environment.

    Adds ``--config PATH`` to ``parser`` (unless it has one). Bad settings exit with status 2
    and one line naming the variable or the file and key.

    Args:
        parser: the command's parser; its options define the settable names.
        argv: the command-line arguments (default: ``sys.argv[1:]``).
        environ: the environment (default: ``os.environ``).

    Returns:
        The parsed namespace, every value typed as its option's ``type``.
    """
    env = os.environ if environ is None else environ
    args = list(sys.argv[1:] if argv is None else argv)
    if not any("--config" in action.option_strings for action in parser._actions):
        parser.add_argument(
            "--config",
            help=f"TOML/JSON file of settings (also ${env_name('config')}); "
            f"flags > ${ENV_PREFIX}<NAME> variables > file > defaults",
        )
    options = settable_options(parser)
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--config")
    known, _ = first.parse_known_args(args)
    config = known.config or env.get(env_name("config")) or None
    try:
        defaults = _file_settings(Path(config), options) if config else {}
        for dest, action in options.items():
            value = env.get(env_name(dest))
            if value:  # an empty variable counts as unset
                defaults[dest] = _convert(action, value, f"environment {env_name(dest)}")
    except _SettingError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    parser.set_defaults(**defaults)
    return parser.parse_args(args)
