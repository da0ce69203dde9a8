import json
import subprocess
import sys

import pytest

from tissue_inn.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("simulate", "merge", "train", "info", "evaluate", "baseline", "infer", "gui"):
        assert cmd in out


def test_command_list_matches_help(capsys):
    from tissue_inn.cli import COMMANDS

    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names)) and "gui" in names
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(f"    {n}" in out for n in names)


def test_importing_the_cli_loads_neither_gui_nor_qt():
    code = ("import sys, tissue_inn.cli; bad = [m for m in sys.modules if m.startswith(('tissue_inn.gui', "
            "'PySide6', 'pyqtgraph', 'superqt'))]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_gui_command_without_display_is_a_clear_error(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-m", "tissue_inn", "gui"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "display" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("cmd", ["simulate", "merge", "train", "info", "evaluate", "baseline", "infer", "gui"])
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_bad_input_is_one_line_error_and_exit_2(tmp_path, capsys):
    code = main(["simulate", "--tissue", "kidney", "-n", "10", "-o", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: unknown tissue 'kidney'") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_simulate_command_writes_dataset_and_refuses_overwrite(tmp_path, capsys):
    out = tmp_path / "d.h5"
    args = ["-q", "simulate", "-n", "16", "--seed", "3", "--n-quad", "8", "--nodes-per-band", "1", "-o", str(out)]
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["samples"] == 16 and out.exists()
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err


def test_info_of_a_bundle(tiny_bundle, capsys):
    assert main(["info", str(tiny_bundle)]) == 0
    out = capsys.readouterr().out
    assert "sao2" in out and "cinn" in out and "470.0" in out


def test_debug_shows_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tissue_inn", "--debug", "info", str(tmp_path / "none")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_info_and_infer_say_how_far_the_intervals_can_be_trusted(tiny_bundle, tmp_path, capsys):
    assert main(["info", "colon_inn"]) == 0
    assert "calibration  : poor" in capsys.readouterr().out
    assert main(["info", str(tiny_bundle)]) == 0
    assert "calibration  : unknown" in capsys.readouterr().out
    from tissue_inn.cli.infer import say_trust

    say_trust("colon_inn")
    assert capsys.readouterr().err.startswith("warning: Posterior intervals are NOT calibrated")
    say_trust(str(tiny_bundle))
    assert "note: This model's calibration has not been evaluated" in capsys.readouterr().err
