"""``seqboltz serve`` settings: flag > SEQBOLTZ_* variable > config file > default; bad settings
are one line and exit 2; --metrics-host makes /metrics reachable from other hosts."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from serving_helpers import start_server

from serving.config import env_name, parse_settings, settable_options
from serving.metrics import Metrics
from serving.server import _parser


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    config = _write(tmp_path / "serve.toml", 'port = 6000\ngrace = 20\nhost = "0.0.0.0"\n')
    environ = {"SEQBOLTZ_PORT": "7000", "SEQBOLTZ_MAX_BATCH": "8"}
    args = parse_settings(_parser(), ["--config", str(config), "--max-batch", "4"], environ)
    assert args.max_batch == 4  # flag beats env
    assert args.port == 7000  # env beats file
    assert args.grace == 20.0 and isinstance(args.grace, float)  # file beats default
    assert args.host == "0.0.0.0"
    assert args.threads == 1 and args.metrics_host == "127.0.0.1"  # defaults
    # the file can come from $SEQBOLTZ_CONFIG; an empty variable counts as unset
    args = parse_settings(_parser(), [], {"SEQBOLTZ_CONFIG": str(config), "SEQBOLTZ_PORT": ""})
    assert args.port == 6000
    assert parse_settings(_parser(), [], {}).port == 50051


def test_every_option_has_a_variable_and_a_key(tmp_path: Path) -> None:
    options = settable_options(_parser())
    assert {"models", "host", "port", "metrics_port", "metrics_host", "token", "grace"} <= set(
        options
    )
    for dest, action in options.items():
        if action.nargs == 0:  # an on/off flag
            value = "false" if action.default else "true"
        else:
            value = "0.0.0.0" if action.type is None else "3"
        from_env = parse_settings(_parser(), [], {env_name(dest): value})
        from_file = parse_settings(
            _parser(), ["--config", str(_write(tmp_path / "s.json", json.dumps({dest: value})))], {}
        )
        assert getattr(from_env, dest) == getattr(from_file, dest) != action.default, dest
    assert env_name("metrics_host") == "SEQBOLTZ_METRICS_HOST"
    dashed = _write(tmp_path / "k.toml", "max-frames = 9")
    key = parse_settings(_parser(), ["--config", str(dashed)], {})
    assert key.max_frames == 9  # dashed keys as on the command line


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("", {"SEQBOLTZ_PORT": "fifty"}, "environment SEQBOLTZ_PORT: invalid int value 'fifty'"),
        ("prot = 1\n", {}, "unknown setting 'prot'"),
        ('port = "x"\n', {}, "port: invalid int value 'x'"),
        ("port = [1, 2]\n", {}, "port: expected one value"),
        ("port = \n", {}, "serve.toml: "),
        (
            "",
            {"SEQBOLTZ_MAX_REPLAY_FRAMES": "-3"},
            "environment SEQBOLTZ_MAX_REPLAY_FRAMES: expected an integer >= 0, got -3",
        ),
        ("max_batch = 0\n", {}, "max_batch: expected an integer >= 1, got 0"),
    ],
)
def test_bad_settings_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, environ: dict, message: str
) -> None:
    config = _write(tmp_path / "serve.toml", text)
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(_parser(), ["--config", str(config)], environ)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("seqboltz serve: error: ") and err.count("\n") == 1, err
    assert message in err
    with pytest.raises(SystemExit):
        parse_settings(_parser(), ["--config", str(tmp_path / "missing.toml")], {})
    assert "missing.toml" in capsys.readouterr().err


def _reachable(url: str) -> bool:
    try:
        return b"seqboltz_active_streams" in urllib.request.urlopen(url, timeout=5).read()
    except (urllib.error.URLError, ConnectionError):
        return False


def test_metrics_host_from_the_environment_reaches_other_hosts(tmp_path: Path) -> None:
    # 127.0.0.2 is loopback too, but a socket bound to 127.0.0.1 does not answer on it: it
    # stands for "another address" without sending anything off this machine.
    address = "127.0.0.2"
    private = Metrics().serve_http(0)  # the default: loopback only
    assert _reachable(f"http://127.0.0.1:{private}/metrics")
    assert not _reachable(f"http://{address}:{private}/metrics")
    config = _write(tmp_path / "serve.toml", 'metrics_host = "127.0.0.1"\n')
    public = start_server(None, "--config", str(config), env={"SEQBOLTZ_METRICS_HOST": "0.0.0.0"})
    try:
        assert _reachable(f"http://{address}:{public.metrics_port}/metrics")
    finally:
        assert public.stop() == 0


def test_on_off_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def parser() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog="demo")
        p.add_argument("--verbose", action="store_true")
        return p

    assert parse_settings(parser(), [], {"SEQBOLTZ_VERBOSE": "yes"}).verbose is True
    config = _write(tmp_path / "s.toml", "verbose = true\n")
    assert parse_settings(parser(), ["--config", str(config)], {}).verbose is True
    off = {"SEQBOLTZ_VERBOSE": "off"}
    assert parse_settings(parser(), ["--config", str(config)], off).verbose is False
    assert parse_settings(parser(), ["--verbose"], off).verbose is True
    with pytest.raises(SystemExit):
        parse_settings(parser(), [], {"SEQBOLTZ_VERBOSE": "maybe"})
    assert "SEQBOLTZ_VERBOSE: expected true or false, got 'maybe'" in capsys.readouterr().err
