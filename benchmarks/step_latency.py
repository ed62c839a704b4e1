"""Step latency: one event in, the next event sampled, one thread; neuralband against torch.

What is measured: the wall time of one generation step, i.e. feed one token, read the logits,
sample the next token (which is fed on the next step), on ONE thread (OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS are set to 1 before numpy and torch are imported, and
``torch.set_num_threads(1)``). Every row samples the same way, in numpy, without allocating:
``z = logits / T; p = exp(z - max z); token = searchsorted(cumsum(p), u * sum p)`` (inverse CDF,
T = 1). Each row runs ``--warmup`` untimed steps, then the timed ones; the median and the p99 of
the per-step times are kept. Rows, all in one run:

1. ``Stepper 3x512``: ``neuralband.runtime.Stepper`` (numpy) with the "performance" preset
   (3 x 512, embedding 256) from a seeded, randomly initialised ``EventLSTM``, fp32.
2. ``nn.LSTM stepped``: the same ``EventLSTM`` called one event at a time,
   ``model(token[None, None], state)`` under ``torch.no_grad()``, the naive way (measured before
   on an AMD EPYC: 10.9 ms per step). Fewer steps (``--slow-steps``): it is slow.
3. ``nn.LSTMCell x3``: embedding + one ``nn.LSTMCell`` per layer (the LSTM's weights copied in) +
   the head, stepped under ``no_grad`` (before: 1.1 ms per step). ``--slow-steps`` too.
4. ``Stepper bundled``: the Stepper with the model shipped in the package (2 x 256, fp16 file,
   run in fp32).
5. ``Stepper GRU`` rows: a seeded, randomly initialised GRU of the same shape (``--cell gru``:
   r, z, n gates, a step reads 3/4 of the LSTM's recurrent bytes), fp32 and int8.
6. ``int8`` rows: rows 1 and 4 with ``precision="int8"`` (`neuralband.int8`: int8 matrices with
   per-row scales, a numba kernel; the kernel is compiled or loaded from numba's cache before
   timing). How much the int8 weights change the predictions is measured on real data by
   ``benchmarks/precision_nll.py``; here the largest logit difference from fp32 over the timed
   steps' first events is printed as a sanity check.

7. ``bundled live path``: what ``play`` does per event with the bundled model, fp32 and int8: its
   key and density controls set (a conditioned model; C major, 6 notes/s), feed, the grammar's
   mask (``NoteTracker``: polyphony 8, the model's longest note) and top-p 0.95 sampling
   (``neuralband.sampling.Sampler``). Goal: p99 <= 1 ms for one of the two.

The floor: the bytes of weights a 3 x 512 step must read (the Stepper's ``w_hh0``, ``w_fused``
and ``w_head`` arrays plus one row of its input table) over the read bandwidth measured in the same
run by one single-threaded GEMV (``np.dot(vector, matrix)``, median of repeats) over an fp32
matrix of that many bytes: the time a step cannot beat on this machine with this BLAS. Whether
those bytes come from cache or DRAM depends on the machine's last-level cache; a buffer of the
same size is read so the floor sees the same cache as the Stepper does.

The int8 floor: the same with the int8 step's bytes (the int8 matrices, their scales, one fp32
table row) at the same bandwidth.

Start-up, in fresh subprocesses (the environment as this script got it, so the thread variables
above do not apply there): the wall time from before the child is started to its exit, for
``Stepper.load(bundled_model()); feed(60); logits()``, the same with ``precision="int8"`` (numba
imported, the kernel from its on-disk cache) and, for comparison, ``import torch`` alone,
median of ``--startup-runs`` (5) runs. Peak memory is the child's own ``VmHWM`` (the high-water
mark of its resident set, from ``/proc/self/status``, read as its last statement), the maximum
over the runs. Not ``ru_maxrss``: on Linux a child's ``ru_maxrss`` (``RUSAGE_CHILDREN``,
``os.wait4``, even ``RUSAGE_SELF``) includes the address space it was forked from, so a child of
this script (torch loaded, ~350 MB) would report this script's size. Linux only.

Run from the repository root::

    python benchmarks/step_latency.py                          # 5,000 steps, 500 slow steps
    python benchmarks/step_latency.py --steps 500 --slow-steps 50 --startup-runs 1  # smoke test

The output is a table (row, params, median ms, p99 ms, speed-up over nn.LSTM in this run), the
floor, the start-up lines, the machine, PASS/FAIL lines for the goals (3 x 512 fp32 median
<= 0.2 ms and p99 <= 0.4 ms; >= 50x faster than nn.LSTM stepping; ready in <= 1 s with <= 150 MB
peak memory; a 3 x 512 int8 step of either cell, LSTM and GRU, median <= 0.2 ms) and a last
line of JSON with all the numbers. A failed goal is printed as FAIL, with the floor beside it.
Other processes busy on the same cores give higher, noisier numbers.
"""

from __future__ import annotations

import os

CHILD_ENV = dict(os.environ)  # start-up is measured as a user would start it
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy and torch are imported

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine import cpu_model, print_rows, usable_cpus, version  # noqa: E402
from neuralband.model import PRESETS, EventLSTM  # noqa: E402
from neuralband.modelfile import bundled_model  # noqa: E402
from neuralband.runtime import Stepper, load_weights  # noqa: E402

TEMPERATURE = 1.0
FIRST_TOKEN = 60
GOAL_MEDIAN_MS = 0.2
GOAL_P99_MS = 0.4
GOAL_SPEEDUP = 50.0
GOAL_READY_S = 1.0
GOAL_PEAK_MB = 150.0
GOAL_INT8_MEDIAN_MS = 0.2  # a 3 x 512 int8 step of either cell, LSTM and GRU (issue 17)
GOAL_LIVE_P99_MS = 1.0  # the default model's live step, controls and grammar included

STEPPER_CHILD = ("from neuralband.runtime import Stepper; "
                 "from neuralband.modelfile import bundled_model; "
                 "s = Stepper.load(bundled_model()); s.feed(60); s.logits()")
INT8_CHILD = STEPPER_CHILD.replace("bundled_model())", "bundled_model(), precision='int8')")
TORCH_CHILD = "import torch"


@dataclass
class Row:
    """One measured row."""

    row: str
    params: int
    steps: int
    median_ms: float
    p99_ms: float
    speedup: float | None = None


class Sampler:
    """Inverse-CDF sampling from (1, V) logits into buffers allocated once."""

    def __init__(self, vocab: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.z = np.empty(vocab, np.float32)
        self.cdf = np.empty(vocab, np.float32)

    def __call__(self, logits: np.ndarray) -> int:
        z = np.divide(logits[0], TEMPERATURE, out=self.z)
        z -= z.max()
        np.exp(z, out=z)
        np.cumsum(z, out=self.cdf)
        return int(np.searchsorted(self.cdf, self.rng.random() * self.cdf[-1]))


def time_steps(step: Callable[[int], int], warmup: int, steps: int) -> tuple[float, float]:
    """Run `step` (token in, next token out) warmup + steps times: (median ms, p99 ms)."""
    token = FIRST_TOKEN
    for _ in range(warmup):
        token = step(token)
    times = np.empty(steps, np.float64)
    clock = time.perf_counter
    for i in range(steps):
        t0 = clock()
        token = step(token)
        times[i] = clock() - t0
    return float(np.median(times)) * 1e3, float(np.percentile(times, 99)) * 1e3


# --- the rows -----------------------------------------------------------------------------------


def stepper_step(stepper: Stepper, seed: int) -> Callable[[int], int]:
    sample = Sampler(stepper.config.vocab_size, seed)

    def step(token: int) -> int:
        stepper.feed(token)
        return sample(stepper.logits())

    return step


def live_step(stepper: Stepper, seed: int, beat: bool = True) -> Callable[[int], int]:
    """What `play` does per event with the bundled model: its key and density controls set (a
    conditioned model), its beat clock running (a model that reads the beat, 100 BPM; with
    ``beat=False`` no beat, as `--beat free`), feed, the grammar's mask (`NoteTracker`), top-p
    0.95 sampling."""
    from neuralband.sampling import NoteTracker, model_rules
    from neuralband.sampling import Sampler as LiveSampler
    from neuralband.steering import ControlChoice, steer
    from neuralband.voicing import from_info

    info = stepper.info
    if info.controls is not None:
        steer(stepper, ControlChoice("C major", 6.0))
    stepper.place_beat(0.0 if beat else None, 0.6)
    rules = model_rules(info, None, top_p=0.95, max_polyphony=8)
    tracker = NoteTracker(rules, info.encoder)
    sampler = LiveSampler(rules, seed, info.config.vocab_size,
                          from_info(info).is_shift)  # the waits: one choice, as play draws

    def step(token: int) -> int:
        stepper.feed(token)
        tracker.update(token)
        return sampler.sample(stepper.logits()[0], tracker.allowed(), tracker.endings())

    return step


def lstm_step(model: EventLSTM, seed: int) -> Callable[[int], int]:
    """The naive way: the whole module, one event at a time, with its (h, c) state."""
    sample = Sampler(model.config.vocab_size, seed)
    state = None

    def step(token: int) -> int:
        nonlocal state
        with torch.no_grad():
            logits, state = model(torch.tensor([[token]]), state)
        return sample(logits[0].numpy())

    return step


def cells_step(model: EventLSTM, seed: int) -> Callable[[int], int]:
    """Embedding + one nn.LSTMCell per layer (the LSTM's weights) + head, stepped."""
    c = model.config
    cells = []
    for k in range(c.layers):
        cell = nn.LSTMCell(c.embed_dim if k == 0 else c.hidden, c.hidden)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(model.lstm, f"{name}_l{k}"))
        cells.append(cell.eval())
    hs = [torch.zeros(1, c.hidden) for _ in cells]
    cs = [torch.zeros(1, c.hidden) for _ in cells]
    sample = Sampler(c.vocab_size, seed)

    def step(token: int) -> int:
        with torch.no_grad():
            x = model.embed(torch.tensor([token]))
            for k, cell in enumerate(cells):
                hs[k], cs[k] = cell(x, (hs[k], cs[k]))
                x = hs[k]
            logits = model.head(x)
        return sample(logits.numpy())

    return step


def check_same(model: EventLSTM, stepper: Stepper) -> float:
    """Max |logits| difference between the module and the Stepper over a few events."""
    tokens = [FIRST_TOKEN, 1, 200, 387 % model.config.vocab_size, 5]
    with torch.no_grad():
        ref = model(torch.tensor([tokens]))[0][0].numpy()
    worst = 0.0
    for t, token in enumerate(tokens):
        stepper.feed(token)
        worst = max(worst, float(np.abs(stepper.logits()[0] - ref[t]).max()))
    stepper.reset()
    return worst


def logits_diff(a: Stepper, b: Stepper, events: int = 200) -> float:
    """Max |logits a - logits b| over the same seeded random events (both reset after)."""
    worst = 0.0
    for token in np.random.default_rng(0).integers(0, a.config.vocab_size, events):
        a.feed(int(token))
        b.feed(int(token))
        worst = max(worst, float(np.abs(a.logits() - b.logits()).max()))
    a.reset()
    b.reset()
    return worst


# --- the floor ----------------------------------------------------------------------------------


def step_bytes(stepper: Stepper) -> int:
    """Bytes of weights one step reads: recurrent + fused matrices + head + one table row."""
    return stepper.weight_bytes


def gemv_bandwidth(nbytes: int, repeats: int) -> tuple[float, float]:
    """(median s, bytes/s) of np.dot(vector, matrix) over an fp32 matrix of ~nbytes."""
    cols = 2048
    rows = max(1, nbytes // (4 * cols))
    matrix = np.random.default_rng(0).standard_normal((rows, cols), dtype=np.float32)
    vector = np.ones(rows, np.float32)
    out = np.empty(cols, np.float32)
    for _ in range(10):
        np.dot(vector, matrix, out=out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.dot(vector, matrix, out=out)
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    return seconds, matrix.nbytes / seconds


# --- start-up -----------------------------------------------------------------------------------


# The child's last statement: its own peak RSS (kB), after the code measured.
PEAK = ("; import sys as _s; _s.stdout.write([_l for _l in open('/proc/self/status') "
        "if _l.startswith('VmHWM:')][0])")


def run_child(code: str) -> tuple[float, float]:
    """(seconds from before the start to exit, peak RSS in MB) of `python -c code`."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + PEAK], cwd=REPO, env=CHILD_ENV,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}): python -c {code!r}\n{done.stderr}")
    return seconds, int(done.stdout.split()[-2]) / 1024  # "VmHWM:  12345 kB"


def startup(code: str, runs: int) -> dict:
    results = [run_child(code) for _ in range(runs)]
    return {"code": code, "runs": runs,
            "median_s": statistics.median(r[0] for r in results),
            "peak_mb": max(r[1] for r in results)}


# --- report -------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    header = ["row", "params", "steps", "median ms", "p99 ms", "vs nn.LSTM"]
    lines = [[r.row, f"{r.params:,}", f"{r.steps:,}", f"{r.median_ms:.3f}", f"{r.p99_ms:.3f}",
              "" if r.speedup is None else f"{r.speedup:,.1f}x"] for r in rows]
    print_rows(header, lines)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000, help="timed steps, Stepper rows")
    parser.add_argument("--slow-steps", type=int, default=500, help="timed steps, torch rows")
    parser.add_argument("--warmup", type=int, default=200, help="untimed steps before each row")
    parser.add_argument("--startup-runs", type=int, default=5, help="fresh processes per line")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    def say(what: str) -> None:
        print(f"{what} ...", file=sys.stderr, flush=True)

    config = PRESETS["performance"]
    model = EventLSTM(config).eval()
    weights = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    stepper = Stepper(weights, config)
    diff = check_same(model, stepper)
    if diff > 1e-3:
        raise SystemExit(f"Stepper and EventLSTM disagree: max |logits diff| {diff:.2e}")
    params = model.num_parameters()
    bundled_weights, info = load_weights(bundled_model())
    bundled = Stepper(bundled_weights, info.config)
    bundled_params = sum(int(w.size) for w in bundled_weights.values())
    c, b = config, info.config

    stepper8 = Stepper(weights, config, precision="int8")
    bundled8 = Stepper(bundled_weights, info.config, precision="int8")
    int8_diff = max(logits_diff(stepper, stepper8), logits_diff(bundled, bundled8))

    say("Stepper 3x512")
    rows = [Row(f"Stepper {c.layers}x{c.hidden} fp32", params, args.steps,
                *time_steps(stepper_step(stepper, args.seed), args.warmup, args.steps))]
    say("Stepper 3x512 int8")
    rows.append(Row(f"Stepper {c.layers}x{c.hidden} int8", params, args.steps,
                    *time_steps(stepper_step(stepper8, args.seed), args.warmup, args.steps)))
    say("nn.LSTM stepped")
    rows.append(Row(f"nn.LSTM stepped {c.layers}x{c.hidden}", params, args.slow_steps,
                    *time_steps(lstm_step(model, args.seed), args.warmup, args.slow_steps)))
    say("nn.LSTMCell stepped")
    rows.append(Row(f"nn.LSTMCell x{c.layers} {c.layers}x{c.hidden}", params, args.slow_steps,
                    *time_steps(cells_step(model, args.seed), args.warmup, args.slow_steps)))
    say("Stepper bundled")
    rows.append(Row(f"Stepper bundled {b.layers}x{b.hidden} ({info.dtype} file)", bundled_params,
                    args.steps,
                    *time_steps(stepper_step(bundled, args.seed), args.warmup, args.steps)))
    say("Stepper bundled int8")
    rows.append(Row(f"Stepper bundled {b.layers}x{b.hidden} int8", bundled_params, args.steps,
                    *time_steps(stepper_step(bundled8, args.seed), args.warmup, args.steps)))
    # The GRU (--cell gru) of the same shape: three gates where the LSTM has four.
    gru_config = replace(config, cell="gru")
    gru_model = EventLSTM(gru_config).eval()
    gru_weights = {k: v.detach().numpy().astype(np.float32)
                   for k, v in gru_model.state_dict().items()}
    gru = {p: Stepper(gru_weights, gru_config, precision=p) for p in ("fp32", "int8")}
    gru_params = gru_model.num_parameters()
    for precision, g in gru.items():
        say(f"Stepper GRU 3x512 {precision}")
        rows.append(Row(f"Stepper GRU {c.layers}x{c.hidden} {precision}", gru_params,
                        args.steps, *time_steps(stepper_step(g, args.seed), args.warmup,
                                                args.steps)))
    controls = "with controls, " if info.controls is not None else ""
    beats = (True, False) if info.controls is not None and info.controls.beat else (False,)
    for precision in ("fp32", "int8"):
        for beat in beats:
            say(f"bundled live path {precision}{' beat' if beat else ''}")
            live = Stepper(bundled_weights, info.config, info=info, precision=precision)
            what = f"{controls}{'beat, ' if beat else 'no beat, ' if len(beats) > 1 else ''}"
            rows.append(Row(f"bundled live path ({what}grammar, top-p) {precision}",
                            bundled_params, args.steps,
                            *time_steps(live_step(live, args.seed, beat), args.warmup,
                                        args.steps)))
    lstm_ms = rows[2].median_ms
    for r in rows:
        r.speedup = lstm_ms / r.median_ms

    say("floor")
    nbytes = step_bytes(stepper)
    gemv_s, bandwidth = gemv_bandwidth(nbytes, repeats=200)
    floor = {"bytes_per_step": nbytes, "method": "median np.dot(vector, fp32 matrix) of the same "
             "bytes, 1 thread", "gemv_ms": gemv_s * 1e3, "bandwidth_gb_s": bandwidth / 1e9,
             "floor_ms": nbytes / bandwidth * 1e3, "int8_bytes_per_step": step_bytes(stepper8),
             "int8_floor_ms": step_bytes(stepper8) / bandwidth * 1e3,
             "gru_bytes_per_step": step_bytes(gru["fp32"]),
             "gru_floor_ms": step_bytes(gru["fp32"]) / bandwidth * 1e3,
             "gru_int8_bytes_per_step": step_bytes(gru["int8"]),
             "gru_int8_floor_ms": step_bytes(gru["int8"]) / bandwidth * 1e3}

    say("start-up (fresh processes)")
    ready = startup(STEPPER_CHILD, args.startup_runs)
    ready8 = startup(INT8_CHILD, args.startup_runs)
    torch_only = startup(TORCH_CHILD, args.startup_runs)

    print_table(rows)
    print(f"floor: {nbytes / 1e6:.1f} MB of weights per 3x512 step / "
          f"{floor['bandwidth_gb_s']:.1f} GB/s ({floor['method']}) = "
          f"{floor['floor_ms']:.3f} ms per step; int8: "
          f"{floor['int8_bytes_per_step'] / 1e6:.1f} MB = {floor['int8_floor_ms']:.3f} ms; "
          f"GRU {floor['gru_bytes_per_step'] / 1e6:.1f} MB = {floor['gru_floor_ms']:.3f} ms, "
          f"int8 {floor['gru_int8_bytes_per_step'] / 1e6:.1f} MB = "
          f"{floor['gru_int8_floor_ms']:.3f} ms")
    print(f"check: int8 vs fp32 Stepper logits, max |diff| over 200 events = {int8_diff:.2f} "
          "(the NLL change on real music: benchmarks/precision_nll.py)")
    print(f"check: Stepper vs EventLSTM logits, max |diff| over 5 events = {diff:.1e}")
    for name, s in (("ready (Stepper.load bundled + feed + logits)", ready),
                    ("ready, int8 (numba kernel from its cache)", ready8),
                    ("import torch alone", torch_only)):
        print(f"start-up: {name}: {s['median_s']:.3f} s median of {s['runs']}, "
              f"peak RSS {s['peak_mb']:.0f} MB (max of runs)")
    print("start-up: wall time from before the child's start to its exit; peak RSS = the child's "
          "own VmHWM (/proc/self/status)")
    machine = {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "cpus_usable": usable_cpus(),
               "threads": 1, "python": sys.version.split()[0], "numpy": version("numpy"),
               "torch": version("torch")}
    print(f"machine: {machine['cpu_model']} ({machine['cpus_usable']} of {machine['cpus']} CPUs "
          f"usable), 1 thread, python {machine['python']}, numpy {machine['numpy']}, "
          f"torch {machine['torch']}")

    ours, ours8 = rows[0], rows[1]
    # the live goal holds with every control the model reads (its beat clock running)
    live_rows = [r for r in rows if r.row.startswith("bundled live path")
                 and "no beat" not in r.row]
    gru8 = next(r for r in rows if r.row.startswith("Stepper GRU") and r.row.endswith("int8"))
    floor_note = f"(floor {floor['floor_ms']:.3f} ms)"
    goals = {
        "latency": ours.median_ms <= GOAL_MEDIAN_MS and ours.p99_ms <= GOAL_P99_MS,
        "speedup": ours.speedup >= GOAL_SPEEDUP,
        "startup": ready["median_s"] <= GOAL_READY_S and ready["peak_mb"] <= GOAL_PEAK_MB,
        "int8_latency": max(ours8.median_ms, gru8.median_ms) <= GOAL_INT8_MEDIAN_MS,
        "live_p99": min(r.p99_ms for r in live_rows) <= GOAL_LIVE_P99_MS,
    }
    print(f"{verdict(goals['latency'])}: 3x512 fp32 median {ours.median_ms:.3f} ms "
          f"<= {GOAL_MEDIAN_MS} ms and p99 {ours.p99_ms:.3f} ms <= {GOAL_P99_MS} ms {floor_note}")
    print(f"{verdict(goals['speedup'])}: {ours.speedup:,.1f}x faster than nn.LSTM stepping "
          f">= {GOAL_SPEEDUP:.0f}x (nn.LSTM {lstm_ms:.3f} ms; the floor would be "
          f"{lstm_ms / floor['floor_ms']:,.1f}x)")
    print(f"{verdict(goals['startup'])}: ready in {ready['median_s']:.3f} s "
          f"<= {GOAL_READY_S:.0f} s with {ready['peak_mb']:.0f} MB <= {GOAL_PEAK_MB:.0f} MB peak")
    print(f"{verdict(goals['int8_latency'])}: 3x512 int8 median, LSTM {ours8.median_ms:.3f} ms "
          f"and GRU {gru8.median_ms:.3f} ms <= {GOAL_INT8_MEDIAN_MS} ms (int8 floors: LSTM "
          f"{floor['int8_floor_ms']:.3f} ms, GRU {floor['gru_int8_floor_ms']:.3f} ms)")
    best_live = min(live_rows, key=lambda r: r.p99_ms)
    print(f"{verdict(goals['live_p99'])}: the bundled model's live step ({best_live.row}) p99 "
          f"{best_live.p99_ms:.3f} ms <= {GOAL_LIVE_P99_MS} ms")
    settings = {"steps": args.steps, "slow_steps": args.slow_steps, "warmup": args.warmup,
                "startup_runs": args.startup_runs, "seed": args.seed,
                "temperature": TEMPERATURE, "preset": "performance",
                "bundled": {"config": b.to_dict(), "dtype": info.dtype}}
    print(json.dumps({"benchmark": "step_latency", "machine": machine, "settings": settings,
                      "rows": [asdict(r) for r in rows], "floor": floor,
                      "startup": {"ready": ready, "ready_int8": ready8,
                                  "import_torch": torch_only},
                      "int8_max_logit_diff": int8_diff,
                      "goals": goals}))


if __name__ == "__main__":
    main()
