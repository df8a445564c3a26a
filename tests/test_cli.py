"""`arc-trm COMMAND`: one console script that runs each entry point's own main."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from arc_trm.cli import COMMANDS, main


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_runs_its_modules_help(name, capsys):
    module = importlib.import_module(COMMANDS[name][0])
    assert callable(module.main)
    try:
        code = main([name, "--help"])
    except SystemExit as exit_info:  # argparse's --help exits; train's and predict's return
        code = exit_info.code
    assert code in (0, None)
    assert "usage:" in capsys.readouterr().out


def test_arguments_and_errors_are_the_modules(tmp_path):
    missing = tmp_path / "nowhere.json"
    done = subprocess.run([sys.executable, "-m", "arc_trm.cli", "score", str(missing), "--split", "arc-agi-1/evaluation"],
                          capture_output=True, text=True)
    direct = subprocess.run([sys.executable, "-m", "evaluation.score", str(missing), "--split", "arc-agi-1/evaluation"],
                            capture_output=True, text=True)
    assert done.returncode == direct.returncode == 2 and done.stderr == direct.stderr != ""


def test_no_command_prints_the_list_and_an_unknown_one_is_one_error_line(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main(["trian"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown command 'trian'") and err.count("\n") == 1
