"""Measure ANTsPy's rigid registration against neuroseg's (`preprocess.register_rigid`) on raw series with known motion.

    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=2 nice python tools/registration_compare.py --check       # conversions first
    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=2 nice python tools/registration_compare.py [--cases 10] [--methods neuroseg ants-rigid]

Each expert-labelled case becomes the raw series of tools/raw_eval.py (its `simulate`, same per-case seed: random rigid
motion up to 15 degrees and 20 mm, thick-slice grid, bias field, noise). The series are reoriented and bias-corrected
(`n4_correct`) once, as `raw.coregister` does, so every method sees identical inputs; then FLAIR, T1 and T2 are
registered to the T1c by each method in a subprocess of its own (2 ITK threads; its peak RSS, VmHWM).
Methods: neuroseg = `register_rigid` as shipped (Mattes MI, 3 levels, its alignment check and fallback included);
ants-rigid / ants-denserigid = `ants.registration(type_of_transform="Rigid" / "DenseRigid")`, defaults otherwise
(Mattes MI, 4 levels, centre-of-mass start). ANTs' forward transform (.mat) maps fixed (T1c) points to moving points
in LPS, like register_rigid's; SimpleITK reads it and the same `target_registration_error` scores both over 2,000 brain
points against the known motions. `--check` verifies that on an identity and a known rotation + shift.
Rows are appended to runs/registration-compare/results.json (resumable; inputs cached beside it). antspyx is a
measurement here, not a dependency: `pip install antspyx`.
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
import nibabel as nib
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT/"runs"/"registration-compare"
MOVING = ("flair", "t1", "t2")
THREADS = "2"

def register(method:str, fixed_path:Path, moving_path:Path, mask_path:Path) -> tuple[sitk.Transform, float, bool|None]:
    "(fixed -> moving rigid transform, seconds, alignment check passed) of one method on two NIfTI files."
    if method == "neuroseg":
        from neuroseg.preprocess import register_rigid
        fixed, moving, mask = sitk.ReadImage(str(fixed_path)), sitk.ReadImage(str(moving_path)), sitk.ReadImage(str(mask_path))
        tick = time.perf_counter()
        found, record = register_rigid(fixed, moving, None, mask)
        return found, time.perf_counter() - tick, record["qc"].get("passed")
    import ants
    ants.config._random_seed = 0   # ANTs' metric sampling, reproducible (set_ants_deterministic would force 1 thread)
    fixed, moving = ants.image_read(str(fixed_path)), ants.image_read(str(moving_path))
    tick = time.perf_counter()
    out = ants.registration(fixed, moving, type_of_transform={"ants-rigid": "Rigid", "ants-denserigid": "DenseRigid"}[method])
    seconds = time.perf_counter() - tick
    found = sitk.ReadTransform(out["fwdtransforms"][0])
    for f in set(out["fwdtransforms"] + out["invtransforms"]): Path(f).unlink(missing_ok=True)
    return found, seconds, None

def peak_rss_mb() -> int:
    "This process's peak resident memory (VmHWM: unlike getrusage's ru_maxrss, not inherited across exec)."
    return round(int(next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM")).split()[1]) / 1024)

def worker(method:str, folder:Path):
    "Register each moving modality of `folder` to its T1c; write METHOD-m.tfm and print a JSON line (seconds, peak RSS)."
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(THREADS))
    if method != "neuroseg": import ants   # noqa: F401 (its import counts in the baseline, as neuroseg's imports do)
    else: import neuroseg.preprocess       # noqa: F401
    base = peak_rss_mb()
    rows = {}
    for m in MOVING:
        found, seconds, passed = register(method, folder/"t1c.nii.gz", folder/f"{m}.nii.gz", folder/"t1c_mask.nii.gz")
        sitk.WriteTransform(found, str(folder/f"{method}-{m}.tfm"))
        rows[m] = dict(seconds=round(seconds, 2), check_passed=passed)
    print(json.dumps(dict(rows=rows, rss_import_mb=base, rss_peak_mb=peak_rss_mb())))

def run_worker(method:str, folder:Path) -> dict:
    "The worker's JSON, run in a fresh process with the thread count pinned."
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=THREADS, OMP_NUM_THREADS=THREADS, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, __file__, "--worker", method, str(folder)], env=env, capture_output=True, text=True)
    if done.returncode: raise SystemExit(f"{method} on {folder}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])

def prepare(case:dict, index:int, seed:int) -> Path:
    "Simulate the case's raw series (raw_eval's rng stream) and bias-correct them once; the cached folder."
    from raw_eval import simulate, MODALITIES
    from neuroseg.preprocess import from_nifti, read_volume, reorient, n4_correct, brain_points
    folder = OUT/"inputs"/f"seed{seed}"/case["id"]
    if (folder/"done.json").is_file(): return folder
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        motions = simulate(case, Path(tmp)/"raw", np.random.default_rng([seed, index]), True)   # as raw_eval's first draw
        folder.mkdir(parents=True, exist_ok=True)
        for m in MODALITIES:
            corrected, mask, _ = n4_correct(reorient(read_volume(Path(tmp)/"raw"/f"{m}.nii.gz", m)), m)
            sitk.WriteImage(corrected, str(folder/f"{m}.nii.gz"), True)
            if m == "t1c": sitk.WriteImage(mask, str(folder/"t1c_mask.nii.gz"), True)
    original = nib.load(case["image"][0])   # the brain of the original 1 mm grid, as raw_eval scores it
    brain = from_nifti(nib.Nifti1Image((np.asarray(nib.load(case["label"]).dataobj) > 0).astype(np.float32) + (np.asarray(original.dataobj) > 0), original.affine))
    points = brain_points(sitk.Cast(brain > 0, sitk.sitkUInt8), 2000, 0)
    (folder/"done.json").write_text(json.dumps(dict(points=points.tolist(), motions={m: dict(center=list(t.GetCenter()),
                                    parameters=list(t.GetParameters())) for m, t in motions.items()})))
    return folder

def euler(d:dict) -> sitk.Euler3DTransform:
    "The motion saved by `prepare`."
    t = sitk.Euler3DTransform(d["center"]); t.SetParameters(d["parameters"]); return t

def score(folder:Path, method:str) -> dict:
    "{modality: [median, max] TRE mm} of the method's transforms: T1c-scanner points of the brain, found vs known motion."
    from neuroseg.preprocess import target_registration_error
    saved = json.loads((folder/"done.json").read_text())
    motions = {m: euler(d) for m, d in saved["motions"].items()}
    t1c_points = np.array([motions["t1c"].TransformPoint(tuple(p)) for p in saved["points"]])
    out = {}
    for m in MOVING:
        truth = sitk.CompositeTransform([motions[m], motions["t1c"].GetInverse()])   # T1c scanner -> anatomy -> m scanner
        out[m] = [round(v, 3) for v in target_registration_error(sitk.ReadTransform(str(folder/f"{method}-{m}.tfm")), truth, t1c_points)]
    return out

def check(methods:list, case:dict, seed:int):
    "Each method on the case's corrected raw T1c against itself (identity) and against a known rotation + shift of it."
    from neuroseg.preprocess import brain_points, _centre, target_registration_error
    inputs = prepare(case, 0, seed)   # the raw series' grid, as the pipeline registers it
    fixed, mask = sitk.ReadImage(str(inputs/"t1c.nii.gz")), sitk.ReadImage(str(inputs/"t1c_mask.nii.gz"))
    known = sitk.Euler3DTransform(_centre(fixed), *np.radians([4.0, -6.0, 10.0]), (12.0, -7.0, 5.0))
    points = brain_points(mask, 500, 0)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        for name, truth in (("identity", sitk.Euler3DTransform()), ("known", known)):
            folder = Path(tmp)/name; folder.mkdir()
            sitk.WriteImage(fixed, str(folder/"t1c.nii.gz")); sitk.WriteImage(mask, str(folder/"t1c_mask.nii.gz"))
            moving = sitk.Resample(fixed, fixed, truth.GetInverse(), sitk.sitkLinear, 0.0)   # moving(truth(p)) = fixed(p)
            for m in MOVING: sitk.WriteImage(moving, str(folder/f"{m}.nii.gz"))
            for method in methods:
                found, seconds, _ = register(method, folder/"t1c.nii.gz", folder/"flair.nii.gz", folder/"t1c_mask.nii.gz")
                med, worst = target_registration_error(found, truth, points)
                print(f"check {name:8s} {method:16s} TRE median {med:.3f} mm, max {worst:.3f} mm ({found.GetName()}, {seconds:.0f} s)")
                if method != "neuroseg":   # ANTs' own point mapping must agree with the transform SimpleITK read
                    import ants, pandas as pd
                    out = ants.registration(ants.image_read(str(folder/"t1c.nii.gz")), ants.image_read(str(folder/"flair.nii.gz")), "Rigid")
                    pts = pd.DataFrame(points[:20], columns=["x", "y", "z"])
                    theirs = ants.apply_transforms_to_points(3, pts, out["fwdtransforms"], whichtoinvert=[False]).to_numpy()
                    mine = np.array([sitk.ReadTransform(out["fwdtransforms"][0]).TransformPoint(tuple(p)) for p in points[:20]])
                    print(f"check {name:8s} {method:16s} SimpleITK-read vs ants.apply_transforms_to_points: max {np.abs(theirs - mine).max():.4f} mm")

def summary(rows:list):
    "Markdown table per method: registrations, TRE median / worst-case median / max, seconds median, peak RSS."
    print("\n| method | registrations | TRE median (mm) | median of worst (mm) | max (mm) | > 2 mm median | s / registration (median) | peak RSS MB (import) |\n|---|---|---|---|---|---|---|---|")
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method]
        tre = np.array([r["tre_mm"][m] for r in sel for m in MOVING]); secs = [r["rows"][m]["seconds"] for r in sel for m in MOVING]
        print(f"| {method} | {len(tre)} | {np.median(tre[:, 0]):.2f} | {np.median(tre[:, 1]):.2f} | {tre[:, 1].max():.2f} | "
              f"{int((tre[:, 0] > 2).sum())} | {np.median(secs):.1f} | {max(r['rss_peak_mb'] for r in sel)} ({max(r['rss_import_mb'] for r in sel)}) |")

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=4, help="how many expert-labelled cases, in raw_eval's order")
    ap.add_argument("--methods", nargs="+", default=["neuroseg", "ants-rigid"], choices=["neuroseg", "ants-rigid", "ants-denserigid"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="verify the transform conversion on an identity and a known motion")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker: return worker(args.worker[0], Path(args.worker[1]))
    from real_data import find_real_data
    from neuroseg.data import read_brats
    data = find_real_data(quiet=True)
    if data is None: sys.exit("the real BraTS cases are not here (make real-data, or NEUROSEG_REAL_DATA)")
    cases = [c for sub in ("brats2021", "brats2023", "extra") for c in read_brats(data/sub)[0]][:args.cases]
    OUT.mkdir(parents=True, exist_ok=True)
    if args.check: return check(args.methods, cases[0], args.seed)
    saved = OUT/"results.json"
    rows = json.loads(saved.read_text()) if saved.is_file() else []
    for index, case in enumerate(cases):
        todo = [m for m in args.methods if not any(r["case"] == case["id"] and r["method"] == m and r["seed"] == args.seed for r in rows)]
        if not todo: continue
        folder = prepare(case, index, args.seed)
        for method in todo if index % 2 == 0 else todo[::-1]:   # alternate the order: a busy machine slows both alike
            row = dict(case=case["id"], method=method, seed=args.seed, **run_worker(method, folder))
            row["tre_mm"] = score(folder, method)
            rows.append(row)
            saved.write_text(json.dumps(rows, indent=1))
            print(f"{case['id']} {method}: TRE {row['tre_mm']}, s {[row['rows'][m]['seconds'] for m in MOVING]}, peak {row['rss_peak_mb']} MB", flush=True)
    summary([r for r in rows if r["seed"] == args.seed and r["method"] in args.methods])

if __name__ == "__main__":
    main()
