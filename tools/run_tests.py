"""The project's test command (`make test`): nbdev hygiene, every notebook's tests, the report and benchmark templates,
and the wheel installed into a fresh venv (tools/check_wheel.py).

Notebooks are run with nbdev's own `test_nb` (what `nbdev_test` calls), in parallel, so that each notebook
counts as one test unit; the closing line reads `N passed, M failed`. Cells flagged `#| real` need the real MRI cases
(tools/real_data.py: $NEUROSEG_REAL_DATA, ../shared/data/real, the cache, or fetched by the manifest): they run when
a complete copy is found, and are listed as skipped with one line on how to get the data otherwise.

    python tools/run_tests.py [--flags "slow cuda"] [--only PATTERN ...] [--workers N] [--no-fetch] [--no-wheel]
"""
import argparse, contextlib, hashlib, os, re, signal, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
import real_data

def _tree_digest() -> dict:
    "Content hashes of everything nbdev_clean, nbdev_export and the README generator may rewrite."
    files = [*(ROOT/"nbs").glob("*.ipynb"), *(ROOT/"nbs"/"tutorials").glob("*.ipynb"), *(ROOT/"neuroseg").glob("*.py"), ROOT/"neuroseg"/"cli.json", ROOT/"README.md"]
    return {str(f.relative_to(ROOT)): hashlib.sha1(f.read_bytes()).hexdigest() for f in files if f.is_file()}

def check_sync() -> tuple[bool, str]:
    "Fail when nbdev_clean, nbdev_export or tools/readme.py would change the tree."
    before = _tree_digest()
    for cmd in ([BIN/"nbdev_clean"], [BIN/"nbdev_export"], [sys.executable, "-c", "from neuroseg.cli import write_command_specs; write_command_specs()"],
                [sys.executable, ROOT/"tools"/"readme.py"]):
        subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True, capture_output=True)
    after = _tree_digest()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return not changed, "would change: " + ", ".join(changed) if changed else "clean"

def notebooks(only:list[str]|None) -> list[Path]:
    "Library notebooks to test (scratch notebooks start with `_`), those whose name contains one of `only` if given."
    nbs = sorted(p for p in (ROOT/"nbs").glob("*.ipynb") if not p.name.startswith(("_", ".")))
    return [p for p in nbs if not only or any(o in p.name for o in only)]

def flagged_cells(files:list[Path], flag:str) -> dict:
    "Notebook name -> first line after the flag of each code cell whose first line is `#| <flag>`."
    import nbformat
    out = {}
    for f in files:
        for cell in nbformat.read(f, as_version=4).cells:
            lines = cell.source.strip().splitlines()
            if cell.cell_type == "code" and lines and re.fullmatch(rf"#\|\s*{flag}\s*", lines[0]):
                out.setdefault(f.name, []).append(next((l for l in lines[1:] if not l.startswith("#|")), "").strip())
    return out

def real_data_flag(files:list[Path], fetch:bool) -> str:
    "`real` when the real cases are found (or fetched) and checked, exported as NEUROSEG_REAL_DATA; else list the skips."
    folder = real_data.find_real_data(fetch=fetch)
    if folder is not None:
        os.environ["NEUROSEG_REAL_DATA"] = str(folder)
        return "real"
    for name, firsts in flagged_cells(files, "real").items():
        print(f"skip {name}: {len(firsts)} real-data cell(s): " + "; ".join(repr(l[:60]) for l in firsts))
    print(real_data.HINT)
    return ""

def _test_one(path:str, skip:list, force:list, basepath:str, conn):
    "Child process: one notebook's tests with nbdev's test_nb; sends (ok, seconds, peak RSS in MB) back."
    import multiprocessing, resource
    from nbdev.test import test_nb
    multiprocessing.set_start_method(None, force=True)   # the platform's default again, not the forkserver this came from
    ok, secs = test_nb(Path(path), skip_flags=skip, force_flags=force, basepath=basepath, do_print=False)
    conn.send((ok, secs, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    conn.close()

def _crash(code:int, timeout:float) -> str:
    "Why a notebook's process ended without a result, in words."
    if code is None: return f"timed out after {timeout:.0f} s"
    if code < 0:
        name = signal.Signals(-code).name
        return f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exited with status {code}"

def run_all(files:list[Path], flags:str, workers:int, checks:list=(), timeout:float=900) -> list[tuple[str, bool, float]]:
    """Run each notebook's tests with nbdev's test_nb, each in a process of its own, and the other `checks` (`phases`),
    from one queue, longest first (`SLOW_FIRST`), `workers` at a time.

    A process per notebook (forked from a server that has imported torch and MONAI once) keeps one notebook's memory,
    threads and signal handlers from leaking into the next, and a notebook that crashes its process (a segfault, the
    kernel's OOM killer) fails alone with the reason named, where a shared pool would break and take the others with it.
    One queue: the checks wait on pip, kernels and subprocesses much of the time, so a third worker beside the two
    notebooks' fills what they leave idle, and no worker idles at the end while another still has a queue of its own
    (in a fresh clone on 2 cores, a lane of checks beside a pool of notebooks took 786 s, its notebooks done after 635
    s; one queue, 760 s)."""
    import multiprocessing as mp
    from concurrent.futures import ThreadPoolExecutor
    from nbdev.config import get_config
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "monai", "nibabel", "nbdev.test"])
    skip, basepath = get_config().tst_flags.split(), str(get_config().config_path)
    def one(f:Path):
        start, (here, there) = time.time(), ctx.Pipe(duplex=False)
        p = ctx.Process(target=_test_one, args=(str(f), skip, flags.split(), basepath, there))
        p.start(); there.close()
        result, timed_out = None, not here.poll(timeout)   # a crash closes the pipe: poll returns, recv finds EOF
        if not timed_out:
            with contextlib.suppress(EOFError): result = here.recv()
        p.join(30 if result else 5)   # a child that sent its result but does not exit (a stray thread) is killed
        code = None if timed_out or p.is_alive() else p.exitcode
        if p.is_alive(): p.kill(); p.join()
        if result is None:
            print(f"FAIL {f.name}: its test process {_crash(code, timeout)}", file=sys.stderr)
            return f.name, False, time.time() - start
        ok, secs, rss = result
        print(f"{'ok  ' if ok else 'FAIL'} {f.name} ({secs:.0f} s, peak {rss:.0f} MB)", flush=True)
        return f.name, ok, secs
    tasks = [(f.stem, lambda f=f: one(f)) for f in files] + [(name, lambda n=name, c=cmd: run_phase(n, c)) for name, cmd in checks]
    rank = lambda name: next((i for i, s in enumerate(SLOW_FIRST) if name.startswith(s)), len(SLOW_FIRST))
    with ThreadPoolExecutor(workers) as pool: return list(pool.map(lambda t: t[1](), sorted(tasks, key=lambda t: rank(t[0]))))

# started first, in this order (the longest in a fresh clone on 2 cores); the rest follow, notebooks by name
SLOW_FIRST = ("benchmark", "wheel", "07_infer", "report templates", "10b_raw", "07b_cv", "06_train", "04_model",
              "03c_synth", "05d_export", "10a_preprocess", "05e_metrics")

def run_phase(name:str, cmd:list, cwd:Path=ROOT) -> tuple[str, bool, float]:
    "Run one of the checks after the notebooks' (a script of tools/), its output kept and printed in one block when it ends."
    start = time.time()
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(done.stdout, end="", flush=True)
    return name, done.returncode == 0, time.time() - start

def phases(tmp:str) -> list[tuple[str, list]]:
    """The checks beside the notebooks' tests, longest first: the wheel in a fresh venv (tools/check_wheel.py), the
    benchmark template on tiny inputs, the report templates, the tutorial notebooks, the fault suite (hostile inputs
    against the console scripts: exit 2, one line, nothing left behind) and `make gpu-check`'s steps without a GPU."""
    tools = ROOT/"tools"
    return [("wheel in a fresh venv (check_wheel)", [sys.executable, tools/"check_wheel.py"]),
            ("benchmark template (tiny)", [sys.executable, tools/"bench.py", "--tiny", "--check", "--out", f"{tmp}/reports", "-p", "work_dir", f"{tmp}/work"]),
            ("report templates", [sys.executable, tools/"check_reports.py"]),
            ("tutorial notebooks", [sys.executable, tools/"check_tutorials.py"]),
            ("fault suite (tools/fault_suite.py)", [sys.executable, tools/"fault_suite.py"]),
            ("gpu-check steps (dry run)", [sys.executable, tools/"gpu_check.py", "--dry-run"])]

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flags", default="", help="test flags to run that are normally skipped, e.g. 'slow'")
    ap.add_argument("--only", nargs="+", default=None, help="only notebooks whose name contains one of these")
    ap.add_argument("--skip-sync", action="store_true", help="skip the nbdev clean/export check (local iteration only)")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("NEUROSEG_TEST_WORKERS", 2)))
    ap.add_argument("--no-fetch", action="store_true", help="never download the real cases (use them only where found)")
    ap.add_argument("--no-wheel", action="store_true", help="skip the wheel check (local iteration only)")
    args = ap.parse_args()
    os.chdir(ROOT)
    start, results = time.time(), []
    if not args.skip_sync:
        ok, msg = check_sync()
        results.append(("nbdev clean/export/readme in sync", ok, 0.0))
        if not ok: print(f"FAIL nbdev sync: {msg}; run `make sync` and commit", file=sys.stderr)
    files = notebooks(args.only)
    flags = " ".join([args.flags, real_data_flag(files, fetch=not args.no_fetch)])
    # The other checks join the notebooks' queue with one worker more (a fourth only slows all of them: 649 s against
    # 674 s in the checkout).
    with tempfile.TemporaryDirectory(prefix="neuroseg-bench-check-") as tmp, tempfile.TemporaryDirectory(prefix="neuroseg-cache-") as cache:
        os.environ["NEUROSEG_CACHE_DIR"] = cache   # the tests start from an empty cache and leave the user's alone
        todo = [] if args.only else [p for p in phases(tmp) if not (args.no_wheel and p[0].startswith("wheel"))]
        results += run_all(files, flags, args.workers + bool(todo), todo)
    results.sort(key=lambda r: r[0])
    for name, ok, secs in results: print(f"{'ok  ' if ok else 'FAIL'} {name:45s} {secs:6.1f} s")
    n_ok = sum(ok for _, ok, _ in results)
    print(f"total {time.time() - start:.0f} s")
    print(f"{n_ok} passed, {len(results) - n_ok} failed")
    sys.exit(0 if n_ok == len(results) else 1)

if __name__ == "__main__":
    main()
