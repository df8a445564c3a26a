"""benchmarks/common.py's MFU plumbing: the MFU helper refuses a figure above 100%, the published-peak
table, and the measured matmul rate (on a CPU, at a small size so that the test stays quick)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common  # noqa: E402
from common import MFU_ERROR, MfuError, matmul_rate, measure_peak, memory_cell, mfu, mfu_cell, published_peak  # noqa: E402


def test_mfu_is_achieved_over_peak():
    assert mfu(250e12, 1000e12) == pytest.approx(0.25)
    assert mfu_cell(250e12, 1000e12) == "25.0%"


def test_mfu_of_exactly_100_percent_is_reported():
    assert mfu(989.4e12, 989.4e12) == 1.0
    assert mfu_cell(989.4e12, 989.4e12) == "100.0%"


def test_mfu_above_100_percent_is_refused():
    with pytest.raises(MfuError, match="> 100%"):
        mfu(1.694 * 93e9, 93e9)  # RESULTS.md once held 169.4% against a peak measured at a busy moment
    assert mfu_cell(1.694 * 93e9, 93e9) == MFU_ERROR == "measurement error (MFU > 100%)"
    assert mfu_cell(1.0000001, 1.0) == MFU_ERROR


@pytest.mark.parametrize("peak", [None, float("nan"), 0.0, -1.0])
def test_mfu_without_a_peak_is_unknown(peak):
    assert mfu(1e12, peak) is None
    assert mfu_cell(1e12, peak) == "unknown"


@pytest.mark.parametrize(
    ("name", "dtype", "tflops"),
    [
        ("NVIDIA H200", torch.bfloat16, 989.4),
        ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989.4),  # the SXM part's name
        ("NVIDIA H100 PCIe", torch.bfloat16, 756.5),
        ("NVIDIA A100-SXM4-80GB", torch.bfloat16, 312),
        ("NVIDIA L4", torch.bfloat16, 121),
        ("NVIDIA L40S", torch.bfloat16, 362),  # not the L4's, although "L4" is in the name
        ("NVIDIA L40S", "bfloat16", 362),  # a config's dtype name works too
    ],
)
def test_published_peak_of_known_devices(name, dtype, tflops):
    assert published_peak(name, dtype) == pytest.approx(tflops * 1e12)


@pytest.mark.parametrize(
    ("name", "dtype"),
    [(None, torch.bfloat16), ("", torch.float32), ("NVIDIA H200", torch.float32), ("NVIDIA GeForce RTX 4090", torch.bfloat16),
     ("NVIDIA L40", torch.bfloat16)],  # not an L4
)
def test_published_peak_unknown(name, dtype):
    assert published_peak(name, dtype) is None
    assert mfu_cell(1e12, published_peak(name, dtype)) == "unknown"


def test_cpu_has_no_device_name_and_no_memory_figures():
    cpu = torch.device("cpu")
    assert common.device_name(cpu) is None
    allocated, reserved = common.peak_memory(cpu)
    assert math.isnan(allocated) and math.isnan(reserved)
    assert memory_cell(allocated) == "n/a" and memory_cell(1.234) == "1.23"


def test_matmul_rate_on_cpu_is_positive_and_finite():
    rate = matmul_rate(torch.device("cpu"), torch.float32, size=128, repeats=3)
    assert math.isfinite(rate) and rate > 0
    peak = measure_peak(torch.device("cpu"), torch.float32, size=64, repeats=2, warmup_iterations=1)
    assert math.isfinite(peak.rate) and peak.rate > 0 and (peak.size, peak.repeats) == (64, 2)
    assert "64x64" in peak.describe() and "float32" in peak.describe()


def test_cpu_matmul_size_grows_until_a_matmul_is_slow_enough_and_stops_at_the_cap():
    assert common.cpu_matmul_size(torch.float32, min_seconds=1e-9) == 512  # the first size is already slow enough
    assert common.cpu_matmul_size(torch.float32, min_seconds=100.0, max_size=768) == 768  # never reached: capped


@pytest.mark.parametrize("script", ["bench_load_score.py", "bench_generators.py"])
def test_a_benchmark_without_its_data_stops_at_once_naming_it(tmp_path, script):
    """Checked before any work (bench_generators used to generate for a minute, then crash)."""
    import subprocess

    (tmp_path / "sudoku").mkdir()  # a data folder that holds part of what is needed
    result = subprocess.run([sys.executable, str(Path(common.BENCHMARKS) / script), "--data", str(tmp_path), "--no-record"],
                            capture_output=True, text=True, timeout=120)
    needed = "sudoku/test.csv" if script == "bench_generators.py" else "arc-agi-2/training"
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / needed}: no such file or folder" in result.stderr.strip().splitlines()[-1]
