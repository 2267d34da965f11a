"""The project's test command (`make test`): nbdev hygiene, every notebook's tests, the report and benchmark templates.

Notebooks are run with nbdev's own `test_nb` (what `nbdev_test` calls), in parallel, so that each notebook
counts as one test unit; the closing line reads `N passed, M failed`.

    python tools/run_tests.py [--flags "slow cuda"] [--only PATTERN ...] [--workers N]
"""
import argparse, hashlib, os, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

def _tree_digest() -> dict:
    "Content hashes of everything nbdev_clean, nbdev_export and the README generator may rewrite."
    files = [*(ROOT/"nbs").glob("*.ipynb"), *(ROOT/"neuroseg").glob("*.py"), ROOT/"README.md"]
    return {str(f.relative_to(ROOT)): hashlib.sha1(f.read_bytes()).hexdigest() for f in files if f.is_file()}

def check_sync() -> tuple[bool, str]:
    "Fail when nbdev_clean, nbdev_export or tools/readme.py would change the tree."
    before = _tree_digest()
    for cmd in ([BIN/"nbdev_clean"], [BIN/"nbdev_export"], [sys.executable, ROOT/"tools"/"readme.py"]):
        subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True, capture_output=True)
    after = _tree_digest()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return not changed, "would change: " + ", ".join(changed) if changed else "clean"

def notebooks(only:list[str]|None) -> list[Path]:
    "Library notebooks to test (scratch notebooks start with `_`), those whose name contains one of `only` if given."
    nbs = sorted(p for p in (ROOT/"nbs").glob("*.ipynb") if not p.name.startswith(("_", ".")))
    return [p for p in nbs if not only or any(o in p.name for o in only)]

def run_notebooks(files:list[Path], flags:str, workers:int) -> list[tuple[str, bool, float]]:
    "Run each notebook's tests with nbdev's test_nb, `workers` at a time."
    from fastcore.parallel import parallel
    from nbdev.config import get_config
    from nbdev.test import test_nb
    skip = get_config().tst_flags.split()
    results = parallel(test_nb, files, skip_flags=skip, force_flags=flags.split(), n_workers=workers,
                       basepath=get_config().config_path, pause=0.01, do_print=False)
    return [(f.name, ok, t) for f, (ok, t) in zip(files, results)]

def run_templates() -> list[tuple[str, bool, float]]:
    "Run the papermill report templates with tiny parameters (tools/check_reports.py, once the reports exist)."
    script = ROOT/"tools"/"check_reports.py"
    if not script.is_file(): return []
    start = time.time()
    ok = subprocess.run([sys.executable, str(script)], cwd=ROOT).returncode == 0
    return [("report templates", ok, time.time() - start)]

def run_tutorials() -> list[tuple[str, bool, float]]:
    "Run the tutorial notebooks in nbs/tutorials/ top to bottom with tiny parameters (tools/check_tutorials.py)."
    start = time.time()
    ok = subprocess.run([sys.executable, str(ROOT/"tools"/"check_tutorials.py")], cwd=ROOT).returncode == 0
    return [("tutorial notebooks", ok, time.time() - start)]

def run_bench_template() -> list[tuple[str, bool, float]]:
    "The benchmark template on tiny inputs in a temporary folder (`tools/bench.py --tiny --check`)."
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="neuroseg-bench-check-") as tmp:
        cmd = [sys.executable, str(ROOT/"tools"/"bench.py"), "--tiny", "--check", "--out", f"{tmp}/reports", "-p", "work_dir", f"{tmp}/work"]
        ok = subprocess.run(cmd, cwd=ROOT).returncode == 0
    return [("benchmark template (tiny)", ok, time.time() - start)]

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flags", default="", help="test flags to run that are normally skipped, e.g. 'slow'")
    ap.add_argument("--only", nargs="+", default=None, help="only notebooks whose name contains one of these")
    ap.add_argument("--skip-sync", action="store_true", help="skip the nbdev clean/export check (local iteration only)")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("NEUROSEG_TEST_WORKERS", 2)))
    args = ap.parse_args()
    os.chdir(ROOT)
    start, results = time.time(), []
    if not args.skip_sync:
        ok, msg = check_sync()
        results.append(("nbdev clean/export/readme in sync", ok, 0.0))
        if not ok: print(f"FAIL nbdev sync: {msg}; run `make sync` and commit", file=sys.stderr)
    results += run_notebooks(notebooks(args.only), args.flags, args.workers)
    if not args.only: results += run_templates() + run_tutorials() + run_bench_template()
    for name, ok, secs in results: print(f"{'ok  ' if ok else 'FAIL'} {name:45s} {secs:6.1f} s")
    n_ok = sum(ok for _, ok, _ in results)
    print(f"total {time.time() - start:.0f} s")
    print(f"{n_ok} passed, {len(results) - n_ok} failed")
    sys.exit(0 if n_ok == len(results) else 1)

if __name__ == "__main__":
    main()
