"""`make gpu-check`: everything a GPU machine should measure, in one command; writes reports/bench/<gpu>.json and
<gpu>-check.json.

    python tools/gpu_check.py [--dry-run] [--epochs N]

The steps, each in its own process; a failed step is recorded and the next one still runs:
  1. the device as nvidia-smi and torch see it;
  2. the notebook cells flagged `#| cuda` (tools/run_tests.py --flags cuda on the notebooks that have them);
  3. the benchmark on the GPU (tools/bench.py --device cuda): AMP against fp32 and peak GPU memory (compute floor),
     patches per second (training), inference seconds per case, the engines; it writes reports/bench/<gpu>.json;
  4. a short training run with AMP on the demo's synthetic brains (neuroseg_synth, neuroseg_train --config demo
     train.device=cuda) and its training report (neuroseg_report train, papermill), in runs/gpu-check.

Time on a borrowed GPU is often short, so the script prints each step's wall time
as it goes and the summary JSON is written after every step. --dry-run checks, without a GPU, that every script,
config and template the steps name exists and prints the commands: `make test` runs it.
"""
import argparse, json, os, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

def cuda_notebooks() -> list[str]:
    "The notebooks holding cells flagged `#| cuda`."
    from run_tests import flagged_cells
    return sorted(flagged_cells(sorted((ROOT/"nbs").glob("*.ipynb")), "cuda"))

def steps(epochs:int) -> list[tuple[str, list]]:
    "(name, command) of every step."
    py, run = sys.executable, ROOT/"runs"/"gpu-check"
    return [("device", ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,utilization.gpu", "--format=csv"]),
            ("torch sees the device", [py, "-c", "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"]),
            ("cuda-flagged tests", [py, ROOT/"tools"/"run_tests.py", "--flags", "cuda", "--skip-sync", "--no-wheel", "--no-fetch",
                                    "--only", *[Path(n).stem for n in cuda_notebooks()]]),
            ("benchmark on the GPU", [py, ROOT/"tools"/"bench.py", "--device", "cuda"]),
            ("demo data", [BIN/"neuroseg_synth", "--out", run/"data", "--kind", "brain", "--n", "24", "--spacing", "2",
                           "--shape", "96", "112", "80", "--seed", "0", "--overwrite"]),
            ("training with AMP", [BIN/"neuroseg_train", "--config", ROOT/"configs"/"demo.yaml", "--existing", "archive",
                                   f"data.root={run/'data'}", f"train.out_dir={run/'train'}", "train.device=cuda", "train.amp=auto",
                                   f"train.epochs={epochs}", "data.num_workers=4"]),
            ("training report (papermill)", [BIN/"neuroseg_report", "train", "--config", ROOT/"configs"/"demo.yaml",
                                             f"train.out_dir={run/'train'}", "--name", "gpu-check", "--out", run/"reports"])]

def missing(commands:list[tuple[str, list]]) -> list[str]:
    "Scripts, configs and templates the steps name that do not exist (the dry run's check)."
    from neuroseg.render import template_path
    out = [str(a) for _, cmd in commands for a in cmd if isinstance(a, Path) and a.suffix in (".py", ".yaml") and not a.is_file()]
    out += [str(cmd[0]) for _, cmd in commands if isinstance(cmd[0], Path) and not cmd[0].exists()]
    out += [f"template {t}" for t in ("bench", "train") if not Path(template_path(t)).is_file()]
    return out + ([] if cuda_notebooks() else ["no notebook has a `#| cuda` cell"])

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="check and print the steps; needs no GPU")
    ap.add_argument("--epochs", type=int, default=20, help="epochs of the short training run (8 steps each)")
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    commands = steps(args.epochs)
    if args.dry_run:
        for name, cmd in commands: print(f"gpu-check: {name}: {' '.join(map(str, cmd))}")
        problems = missing(commands)
        for p in problems: print(f"gpu-check: FAIL missing {p}")
        print(f"gpu-check: dry run, {len(commands)} steps, {'all found' if not problems else f'{len(problems)} missing'}")
        return 1 if problems else 0
    import torch
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; run it on a machine with an NVIDIA GPU, or check the steps with --dry-run", file=sys.stderr)
        return 2
    from neuroseg.core import device_label
    from neuroseg.core import write_json_atomic
    summary, out = dict(device=device_label("cuda"), started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), steps=[]), ROOT/"reports"/"bench"
    for name, cmd in commands:
        tick = time.time()
        done = subprocess.run([str(a) for a in cmd], capture_output=True, text=True)
        summary["steps"].append(dict(name=name, command=[str(a) for a in cmd], returncode=done.returncode, seconds=round(time.time() - tick, 1),
                                     output=(done.stdout + done.stderr)[-3000:]))
        print(f"gpu-check: {'ok  ' if done.returncode == 0 else 'FAIL'} {name} ({time.time() - tick:.0f} s)", flush=True)
        write_json_atomic(out/f"{summary['device']}-check.json", summary)
    failed = [s["name"] for s in summary["steps"] if s["returncode"]]
    print(f"gpu-check: wrote {out/(summary['device'] + '-check.json')}" + (f"; failed: {', '.join(failed)}" if failed else "; every step passed"))
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
