"""Shared benchmark plumbing: child processes per implementation, timing, machine facts, and the
results table in benchmarks/RESULTS.md (one section per benchmark, rewritten in place)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_DIR = HERE / "results"
MALLOC_TUNED = {"MALLOC_TRIM_THRESHOLD_": "1073741824", "MALLOC_MMAP_THRESHOLD_": "1073741824"}


def time_calls(f: Callable[[], object], min_reps: int = 20, min_time: float = 0.3) -> dict:
    """Warm up, then time at least `min_reps` calls and `min_time` seconds: median/min seconds."""
    for _ in range(3):
        f()
    ts: list[float] = []
    start = time.perf_counter()
    while len(ts) < min_reps or (time.perf_counter() - start < min_time and len(ts) < 100_000):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return {"median": statistics.median(ts), "min": min(ts), "reps": len(ts)}


def fastnn_relu_mlp(dims: tuple[int, ...], batchnorm: bool = False, dropout: float = 0.0, max_batch: int = 256):
    """The benchmarks' fastnn network: (Dense -> [BatchNorm] -> ReLU -> [Dropout(p = probability of
    dropping)]) per hidden width of ``dims``, then Dense to ``dims[-1]``; seed 0."""
    import fastnn
    from fastnn.layers import BatchNorm, Dense, Dropout, ReLU

    layers: list = []
    for i, o in zip(dims[:-2], dims[1:-1], strict=True):
        layers.append(Dense(i, o))
        if batchnorm:
            layers.append(BatchNorm())
        layers.append(ReLU())
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Dense(dims[-2], dims[-1]))
    return fastnn.Sequential(layers, seed=0, max_batch=max_batch)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def thread_env(threads: int, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "FASTNN_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    env.update(extra or {})
    return env


def rotated(names: list[str], r: int) -> list[str]:
    """``names`` rotated by round ``r``, so that each implementation goes first in turn."""
    k = r % len(names)
    return names[k:] + names[:k]


def run_child(script: Path, args: list[str], env: dict, timeout: float = 1800) -> dict:
    """Run `python script args` in a fresh process; its last stdout line is a JSON object."""
    out = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    """CPU model, cores and the measured clock (fastnn's dependent-add loop)."""
    import fastnn
    from fastnn import _core

    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ghz = _core.measure_clock_ghz()
    cores = _core.hardware_threads()
    return {"cpu": model, "cores": cores, "clock_ghz": round(ghz, 2),
            "fp32_peak_gflops": round(cores * 32 * ghz, 1), "simd": _core.simd_level(),
            "python": platform.python_version(), "fastnn": fastnn.__version__}


SIMD_FLAGS = ("sse2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16",
              "avx512_vnni", "amx_tile", "asimd", "sve")


def cpu_facts() -> dict:
    """From /proc/cpuinfo and sysfs: model name, vendor family/model numbers, which of SIMD_FLAGS
    the CPU reports, and the L2 size per core in bytes (0 if unknown)."""
    info: dict = {"model": platform.processor() or "?", "family": "?", "model_number": "?", "flags": []}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = (s.strip() for s in line.partition(":"))
            if key == "model name" and info["model"] in ("?", platform.processor()):
                info["model"] = val
            elif key == "cpu family" and info["family"] == "?":
                info["family"] = val
            elif key == "model" and info["model_number"] == "?":
                info["model_number"] = val
            elif key in ("flags", "Features") and not info["flags"]:
                have = set(val.split())
                info["flags"] = [f for f in SIMD_FLAGS if f in have]
    except OSError:
        pass
    l2 = 0
    try:
        txt = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip()
        l2 = int(txt.rstrip("KkMm")) * {"K": 1024, "M": 1 << 20}.get(txt[-1:].upper(), 1)
    except (OSError, ValueError):
        pass
    info["l2_bytes"] = l2
    return info


def isa_label(level: str, supported: list[str]) -> str:
    """How a result under SIMD clone `level` must be named on a CPU whose clones are `supported`
    (best first): the best clone is native to the CPU; any other ran through the override, e.g.
    "AVX2 clone (on an AVX-512 CPU, via FASTNN_SIMD)", which is not an AVX2-only CPU's result."""
    names = {"avx512": "AVX-512", "avx2": "AVX2", "baseline": "baseline (SSE2)", "neon": "NEON"}
    cpus = {"avx512": "an AVX-512 CPU", "avx2": "an AVX2 CPU without AVX-512", "baseline": "a CPU without AVX2",
            "neon": "an aarch64 CPU"}
    best = supported[0] if supported else level
    if level == best:
        return f"{names.get(level, level)} (native: the best clone on {cpus.get(best, best)})"
    return f"{names.get(level, level)} clone (on {cpus.get(best, best)}, via FASTNN_SIMD)"


def cpu_slug(facts: dict, best: str) -> str:
    """A file-name tag for a CPU: model name, family/model numbers (hypervisors often hide the
    model name: "AMD EPYC" is both Zen 3 and Zen 4) and the best SIMD clone, e.g.
    amd-epyc-f25m1-avx2."""
    name = re.sub(r"\((r|tm)\)|cpu|processor|\d+-core", "", facts["model"].lower())
    name = re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40] or "cpu"
    return f"{name}-f{facts['family']}m{facts['model_number']}-{best}"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section `## name` of RESULTS.md with `body`."""
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# fastnn benchmark results\n"
    stamp = _dt.date.today().isoformat()
    block = f"## {name}\n\n_Recorded {stamp}, commit {git_commit()}._\n\n{body.strip()}\n"
    pat = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pat.sub(lambda _: block + "\n", text) if pat.search(text) else text.rstrip() + "\n\n" + block
    RESULTS_MD.write_text(text)


def save_json(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    return path
