"""Proof that `pip install neuroseg-3d` is a complete install: build the sdist and the wheel, install them into a fresh venv
outside the checkout, and run every console script from an empty folder, reading no file of the checkout.

1. `python -m build` (sdist, then the wheel built from the sdist, in an isolated build environment); both carry the
   version of settings.ini, the build warns of nothing (setuptools' warnings about undeclared package data, say),
   and the wheel holds every shipped config, report template and model.
2. A fresh venv in a temporary folder: torch first (`$TORCH`, the Makefile's CPU wheel by default), then the sdist
   (built and installed without dependencies: it must build), then the wheel with its dependencies; `pip check`.
3. From an empty folder, with HOME in the temporary folder (no user kernels, configs or caches) and nothing of the
   checkout on any path: every console script's `--help`; `neuroseg.__file__` inside the new venv; a tiny
   neuroseg_synth, neuroseg_train `--config demo` (the shipped config, tiny overrides), neuroseg_infer,
   neuroseg_evaluate and `neuroseg_report evaluate` (the shipped template, run by the venv's own Python).
4. Every command runs under `strace -f` (open, stat and exec calls): no path under the checkout or its `../shared`
   may appear. Without strace (`apt-get install strace`) that check is skipped and said so.

    python tools/check_wheel.py [--keep DIR]
"""
import argparse, configparser, json, os, re, shutil, subprocess, sys, tempfile, time, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = [str(ROOT), str(ROOT.parent/"shared")]
TRACE = "trace=open,openat,openat2,creat,execve,stat,lstat,newfstatat,statx,access,faccessat,faccessat2,readlink,chdir"
TINY = ["data.root=data", "train.out_dir=runs/tiny", "data.roi_size=[16,16,16]", "data.spacing_mm=[1.5,1.5,1.5]",
        "data.num_folds=3", "data.test_fraction=0.34", "model.channels=[8,16,32]", "model.strides=[2,2]",
        "train.epochs=2", "train.iters_per_epoch=2", "train.val_every=1", "train.warmup_epochs=1", "train.device=cpu",
        "tracking.mode=offline"]

def settings() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser(delimiters=["="]); cfg.read(ROOT/"settings.ini")
    return cfg["DEFAULT"]

class Checker:
    "Runs commands in the fresh environment, times them and collects problems."
    def __init__(self, work:Path):
        self.work, self.problems = work, []
        self.strace = shutil.which("strace")
        # --seccomp-bpf stops the traced process only at the traced calls (much faster), where this strace has it
        self.bpf = ["--seccomp-bpf"] if self.strace and subprocess.run(
            ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=openat", "-o", os.devnull, "true"], capture_output=True).returncode == 0 else []
        self.venv = work/"venv"
        self.env = {"PATH": f"{self.venv/'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(work/"home"), "LANG": "C.UTF-8",
                    "WANDB_MODE": "offline", "WANDB_SILENT": "true", "MPLBACKEND": "Agg", "TMPDIR": str(work/"tmp")}
        for d in ("home", "tmp", "traces", "run"): (work/d).mkdir(exist_ok=True)

    def run(self, *cmd, cwd=None, env=None, trace=True, ok=True) -> subprocess.CompletedProcess:
        "Run `cmd` (under strace when `trace`), print its time; a failure is recorded with its output."
        cmd, start = [str(c) for c in cmd], time.time()
        log = self.work/"traces"/f"{len(list((self.work/'traces').iterdir())):02d}-{Path(cmd[0]).name}.strace"
        full = ["strace", "-f", "-qq", *self.bpf, "-e", TRACE, "-o", str(log), *cmd] if trace and self.strace else cmd
        done = subprocess.run(full, cwd=cwd or self.work/"run", env=env or self.env, capture_output=True, text=True)
        print(f"  {time.time() - start:6.1f} s  {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))[:120]}", flush=True)
        if ok and done.returncode != 0:
            self.problems.append(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])}: exit code {done.returncode}")
            sys.stdout.write(done.stdout[-3000:] + done.stderr[-3000:])
        if trace and self.strace: self.check_trace(log, cmd)
        return done

    def check_trace(self, log:Path, cmd:list):
        "Record every checkout path that the traced command (or a child) opened, looked at or ran."
        touched = sorted({m for line in log.read_text(errors="replace").splitlines()
                          for m in re.findall(r'"([^"]*)"', line) if any(m == f or m.startswith(f + "/") for f in FORBIDDEN)})
        if touched: self.problems.append(f"{Path(cmd[0]).name}: touched the checkout: {', '.join(touched[:5])}")
        log.unlink()   # traces of training are large; keep only what failed

def dist_stem() -> str:
    "The distribution's name as file names spell it (PEP 427/625): settings.ini's `lib_name`, `neuroseg-3d` -> `neuroseg_3d`."
    return re.sub(r"[-_.]+", "_", settings()["lib_name"]).lower()

# Not the package's doing: this machine sets PYTHONDONTWRITEBYTECODE, and setuptools says so.
HARMLESS_BUILD_WARNINGS = re.compile(r"byte-compiling is disabled")

def build_warnings(log:str) -> list:
    "The lines of a build log that warn, but for the harmless ones."
    return [l.strip() for l in log.splitlines() if re.search(r"warning", l, re.I) and not HARMLESS_BUILD_WARNINGS.search(l)]

def build(work:Path, version:str, problems:list) -> tuple[Path, Path]:
    "The sdist and the wheel of the checkout, built in an isolated environment; both named with `version`."
    dist, start = work/"dist", time.time()
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], capture_output=True, text=True)
    if done.returncode != 0: sys.exit(f"check_wheel: python -m build failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    print(f"  {time.time() - start:6.1f} s  python -m build (sdist, then the wheel from it)")
    if warned := build_warnings(done.stdout + done.stderr): problems.append("python -m build warned: " + " | ".join(sorted(set(warned))[:5]))
    sdist, wheel = dist/f"{dist_stem()}-{version}.tar.gz", dist/f"{dist_stem()}-{version}-py3-none-any.whl"
    for f in (sdist, wheel):
        if not f.is_file(): sys.exit(f"check_wheel: {f.name} not built (found: {', '.join(p.name for p in dist.iterdir())})")
    return sdist, wheel

def shipped_files() -> list:
    "The files the wheel must hold, as paths inside it: configs, report templates, anything else under neuroseg/."
    tracked = subprocess.run(["git", "ls-files", "neuroseg", "configs"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    present = [p for p in tracked if (ROOT/p).is_file() and not p.endswith(("_modidx.py",))]
    files = [p if p.startswith("neuroseg/") else "neuroseg/" + p for p in present]
    untracked = [f"neuroseg/configs/{p.name}" for p in (ROOT/"configs").iterdir() if p.suffix in (".yaml", ".json")]
    return sorted(set(files + untracked + [f"neuroseg/templates/{t}.ipynb" for t in ("train", "evaluate", "data", "bench", "preprocess", "case")]))

def check_wheel_contents(wheel:Path, problems:list):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in shipped_files() if f not in names]
    if missing: problems.append(f"{wheel.name} lacks: {', '.join(missing)}")

def install(c:Checker, sdist:Path, wheel:Path, torch:str):
    "A fresh venv with torch, then the sdist (no dependencies: it must build and install), then the wheel and its requirements."
    start = time.time()
    subprocess.run([sys.executable, "-m", "venv", str(c.venv)], check=True)
    print(f"  {time.time() - start:6.1f} s  python -m venv {c.venv}")
    pip = [c.venv/"bin"/"python", "-m", "pip", "install", "-q", "--no-compile"]   # modules compile when first imported
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    c.run(*pip, torch, env=env, trace=False)
    c.run(*pip, "--no-deps", sdist, env=env, trace=False)
    c.run(*pip, "--force-reinstall", "--no-deps", wheel, env=env, trace=False)
    done = c.run(*pip, wheel, env=env, trace=False)
    if warned := pip_warnings(done.stdout + done.stderr): c.problems.append("pip install of the wheel warned: " + " | ".join(warned[:5]))
    c.run(c.venv/"bin"/"python", "-m", "pip", "check", env=env, trace=False)

# Not the package's doing: this machine's pip configuration names local package folders that do not all exist.
HARMLESS_PIP = re.compile(r"Location '.*' is ignored")

def pip_warnings(log:str) -> list:
    "pip's WARNING and ERROR lines, but for the harmless ones."
    return [l.strip() for l in log.splitlines() if re.match(r"\s*(WARNING|ERROR)", l) and not HARMLESS_PIP.search(l)]

def console_scripts(c:Checker) -> list:
    "The console scripts the installed distribution declares."
    ep = next(c.venv.glob(f"lib/python*/site-packages/{dist_stem()}-*.dist-info/entry_points.txt"))
    cfg = configparser.ConfigParser(delimiters=["="]); cfg.read(ep)
    return sorted(cfg["console_scripts"])

def help_texts(c:Checker, scripts:list) -> dict:
    "Each console script's `--help`, run side by side from the empty folder (untraced: the pipeline imports the same modules)."
    start = time.time()
    procs = {s: subprocess.Popen([str(c.venv/"bin"/s), "--help"], cwd=c.work/"run", env=c.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for s in scripts}
    texts = {s: p.communicate()[0] for s, p in procs.items()}
    for s, p in procs.items():
        if p.returncode != 0 or "usage:" not in texts[s]: c.problems.append(f"{s} --help: exit code {p.returncode}: {texts[s][-300:]}")
    print(f"  {time.time() - start:6.1f} s  --help of {', '.join(scripts)}")
    return texts

def pipeline(c:Checker, version:str):
    "--help of each console script, then synth, train, infer, evaluate and the evaluation report from an empty folder."
    bin_, run = c.venv/"bin", c.work/"run"
    probe = c.run(bin_/"python", "-c", "import json, neuroseg, neuroseg.train, neuroseg.report, neuroseg.render; from neuroseg.core import find_config, project_root; "
                  "print(json.dumps([neuroseg.__file__, neuroseg.__version__, str(find_config('demo')), project_root()]))")
    if probe.returncode == 0:
        module, ver, demo, root = json.loads(probe.stdout)
        if not module.startswith(str(c.venv) + "/"): c.problems.append(f"neuroseg imported from {module}, not the new venv")
        if ver != version: c.problems.append(f"installed version {ver}, settings.ini says {version}")
        if not demo.startswith(str(c.venv) + "/"): c.problems.append(f"find_config('demo') gave {demo}, not the shipped config")
        if root is not None: c.problems.append(f"project_root() is {root} in an installed package (expected None)")
    helps = help_texts(c, console_scripts(c))
    kind = ["--kind", "ellipsoid"] if "--kind" in helps.get("neuroseg_synth", "") else []
    c.run(bin_/"neuroseg_synth", "--out", "data", "--n", 6, "--shape", 32, 32, 24, "--seed", 0, *kind)
    c.run(bin_/"neuroseg_train", "--config", "demo", *TINY)
    c.run(bin_/"neuroseg_infer", "--ckpt", "runs/tiny/checkpoints/best.pt", "--input", "data/imagesTr",
          "--split", "runs/tiny/split.json", "--out", "runs/tiny/predictions")
    c.run(bin_/"neuroseg_evaluate", "--pred", "runs/tiny/predictions", "--ref", "data/labelsTr", "--split", "runs/tiny/split.json",
          "--convention", "msd", "--out", "runs/tiny/evaluation")
    c.run(bin_/"neuroseg_report", "evaluate", "--config", "demo", *TINY, "--name", "tiny", "--out", "reports")
    page = run/"reports"/"tiny"/"evaluate.html"
    text = page.read_text() if page.is_file() else ""
    if "Evaluation report" not in text or "Traceback" in text: c.problems.append(f"{page}: missing, or shows an error")

def scratch_base() -> str|None:
    "Where the venv goes: /dev/shm (memory) when it has room, since writing and deleting ~60,000 files on a slow disk takes minutes."
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize > 6e9 and os.access("/dev/shm", os.W_OK): return "/dev/shm"
    except OSError: pass
    return None   # the system's temporary folder

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary folder, removed)")
    ap.add_argument("--torch", default=os.environ.get("TORCH", "torch==2.13.0"), help="torch requirement installed first")
    args = ap.parse_args(argv)
    start, version = time.time(), settings()["version"]
    work = (args.keep or Path(tempfile.mkdtemp(prefix="neuroseg-wheel-", dir=scratch_base()))).resolve()
    if any(str(work).startswith(f) for f in FORBIDDEN): sys.exit(f"check_wheel: {work} is inside the checkout; choose another --keep")
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"check_wheel: {settings()['lib_name']} {version} in {work}" + ("" if shutil.which("strace") else
              " (strace not found: the check that no checkout file is read is skipped; apt-get install strace)"))
        c = Checker(work)
        sdist, wheel = build(work, version, c.problems)
        check_wheel_contents(wheel, c.problems)
        install(c, sdist, wheel, args.torch)
        if not c.problems: pipeline(c, version)
        for p in c.problems: print(f"FAIL {p}")
        print(f"check_wheel: {'ok' if not c.problems else 'FAILED'} in {time.time() - start:.0f} s")
        return 1 if c.problems else 0
    finally:
        if not args.keep: shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
