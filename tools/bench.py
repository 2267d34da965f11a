"""`make bench`: the benchmarks against the original NeuroSeg-3D pipeline, on this machine.

`neuroseg_report bench` runs the template reports/bench.ipynb (shipped as neuroseg/templates/bench.ipynb) with papermill
in this Python and publishes reports/bench/<device>.json, .ipynb and .html together; this script adds what `make bench`
and `make test` need around it: a wait for a quiet machine, tiny sizes, and a check of what was written.
The synthetic cases, the shared weights and the disk cache stay in .cache/neuroseg/bench and are reused: on a 2-core
AMD EPYC the first run took 5.3 minutes and later ones 4.7. Measure on a quiet machine (`make bench` waits up to 10
minutes for one): the load average is recorded with the numbers, and a warning is printed when it is above 1.5.

    python tools/bench.py [--device cpu|cuda] [--tiny] [--check] [--out DIR] [--wait MINUTES] [-p NAME VALUE ...]

--tiny runs every comparison on small inputs (a check that the template works, in under a minute; its numbers mean
nothing) and writes into .cache/neuroseg/bench-tiny unless --out is given. --check then checks what was written: every
comparison and target in the JSON, no error or stderr output in the HTML; `make test` runs `--tiny --check`.
"""
import argparse, json, os, sys, time
from check_reports import shows_error   # this script's folder is on sys.path
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(work_dir=".cache/neuroseg/bench-tiny", n_cases=4, shape=[48, 40, 32], train_roi=[32, 32, 32], num_workers=0,
            warmup_steps=1, train_steps=2, floor_steps=1, weights_steps=2, weights_roi=[32, 32, 32], metrics_repeats=1,
            preprocess_cases=2, scaling_shapes=[[32, 32, 24], [48, 40, 32]], network_batch=1, network_steps=1,
            raw_in_plane=64, raw_slices=12, raw_force=True, raw_brain_mm=2.0, raw_spacing=2.0, raw_options=["--no-report"], startup_repeats=1)

def parameters(args) -> dict:
    "The template's parameters: the device, the tiny sizes with --tiny, and each -p NAME VALUE (typed as the template declares)."
    from neuroseg.render import report_parameters
    return dict(device=args.device, **(TINY if args.tiny else {})) | report_parameters("bench", args.p)

def wait_for_quiet(minutes:float, below:float=1.5):
    "Wait up to `minutes` for the 1-minute load average to fall below `below` (a shared machine gives noisy timings)."
    deadline = time.time() + 60 * minutes
    while os.getloadavg()[0] >= below and time.time() < deadline: time.sleep(15)

COMPARISONS = {"inference", "training", "metrics", "preprocessing", "compute floor", "engines", "scale", "networks", "raw scans", "start-up"}
def expected_targets() -> int:
    "Inference time and grid, patches/s, data wait, metrics time, the floor; engines: network stage and equal labels per variant (ONNX Runtime and OpenVINO, and PyTorch and OpenVINO in bf16 where the CPU has bf16 units), TTA, against the original; raw scans: end to end and peak memory; start-up: help and an argument error."
    from neuroseg.export import cpu_has_bf16
    return 6 + 2 * (4 if cpu_has_bf16() is not False else 2) + 2 + 2 + 2

def output_problems(results:Path, page:Path) -> list:
    "What is missing or wrong in a benchmark's JSON and HTML (their numbers are not judged)."
    if not (results.is_file() and page.is_file()): return [f"{results if not results.is_file() else page}: not written"]
    data, html, problems = json.loads(results.read_text()), page.read_text(), []
    if missing := COMPARISONS - {r["comparison"] for r in data["rows"]}: problems.append(f"{results.name}: no rows for {sorted(missing)}")
    if len(data["targets"]) != expected_targets() or any(t["met"] is None for t in data["targets"]):
        problems.append(f"{results.name}: {len(data['targets'])} targets, {sum(t['met'] is None for t in data['targets'])} unmeasured")
    if shows_error(html): problems.append(f"{page.name}: shows an error or stderr output")
    return problems

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--tiny", action="store_true", help="small inputs: checks the template, measures nothing useful")
    ap.add_argument("--check", action="store_true", help="check the JSON and HTML written (exit 1 on a problem)")
    ap.add_argument("--out", type=Path, default=None, help="folder of <device>.json and .html (default reports/bench)")
    ap.add_argument("--wait", type=float, default=0, help="wait up to this many minutes for the load average to fall below 1.5")
    ap.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"), help="a template parameter, e.g. -p train_steps 10")
    args = ap.parse_args()
    args.out = args.out or (ROOT/".cache"/"neuroseg"/"bench-tiny"/"reports" if args.tiny else ROOT/"reports"/"bench")
    os.chdir(ROOT)
    from neuroseg.core import NeurosegError
    from neuroseg.render import render_report
    wait_for_quiet(args.wait)
    load = os.getloadavg()[0]
    if load > 1.5: print(f"bench: warning: load average {load:.2f} on {os.cpu_count()} cores; the numbers will be slow and noisy", file=sys.stderr)
    start = time.time()
    try: page = render_report("bench", parameters(args), name=args.out.name, out=args.out.parent)
    except NeurosegError as e: raise SystemExit(f"bench: {e}")
    print(f"bench: wrote {page.with_suffix('.json')} and {page} in {(time.time() - start) / 60:.1f} min")
    if args.check:
        for problem in (problems := output_problems(page.with_suffix(".json"), page)): print(f"bench: FAIL {problem}")
        return 1 if problems else 0

if __name__ == "__main__":
    sys.exit(main())
