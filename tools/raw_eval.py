"""Measure the raw-scan path (neuroseg_preprocess) on real BraTS cases turned into raw clinical series with known truth.

    python tools/raw_eval.py --out runs/raw-eval [--cases 16] [--seed 0]

Each expert-labelled case (the shared brats2021, brats2023 and extra folders) becomes four raw series: every
modality moved by its own random rigid motion (up to 15 degrees about each axis and 20 mm along each), seen on a
2D axial grid (FLAIR, T1, T1c 0.9 x 0.9 x 5.5 mm; T2 0.6 x 0.6 x 5.5 mm), with a bias field and noise
(preprocess.simulate_raw_series). `preprocess_raw` (the command's function) takes the four NIfTI files like any
user's, with `skull_stripped=True` because BraTS cases are stripped already, and segments with pretrained:brats.
Measured per case:
- the target registration error of FLAIR, T1 and T2 against the T1c over 2,000 brain points (median and worst);
- Dice WT/TC/ET against the expert label in the original 1 mm grid: of the original case, of the raw path (its
  case-grid probabilities brought back by the known T1c motion), and of a control that has the same thick slices,
  noise and field but no motion, which measures what the thick slices alone cost;
- the path's wall time.
Writes <out>/raw_eval.json and prints Markdown tables. The Dice columns are a fair test only on the cases
pretrained:brats never trained on (its model card's held_out, and the extra case); the others are marked.
"""
from __future__ import annotations
import argparse, json, sys, tempfile, time
from pathlib import Path
import numpy as np
import nibabel as nib
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
from real_data import find_real_data
from neuroseg.data import read_brats
from neuroseg.labels import labels_to_regions, REGIONS
from neuroseg.metrics import compute_dice
from neuroseg.preprocess import (from_nifti, random_rigid, simulate_raw_series, target_registration_error, brain_points, _centre)
from neuroseg.raw import preprocess_raw
from neuroseg.infer import load_inference_model, predict
from neuroseg.pretrained import read_registry

MODALITIES = ("flair", "t1", "t1c", "t2")   # the order of a BraTS case's image list (MSD channels)
SPACING = dict(flair=(0.9, 0.9, 5.5), t1=(0.9, 0.9, 5.5), t1c=(0.9, 0.9, 5.5), t2=(0.6, 0.6, 5.5))

def region_dice(labels:np.ndarray, convention:str, ref:np.ndarray, ref_convention:str) -> list[float]:
    p, r = labels_to_regions(labels, convention), labels_to_regions(ref, ref_convention)
    return [round(compute_dice(p[i], r[i]), 4) for i in range(len(REGIONS))]

def simulate(case:dict, folder:Path, rng:np.random.Generator, move:bool) -> dict:
    "Write the case's raw series into `folder`; returns each modality's motion (identity when not `move`)."
    folder.mkdir(parents=True)
    motions = {}
    for i, m in enumerate(MODALITIES):
        vol = from_nifti(nib.load(case["image"][i]))
        motions[m] = random_rigid(rng, _centre(vol)) if move else sitk.Euler3DTransform(_centre(vol))
        sitk.WriteImage(simulate_raw_series(vol, motions[m], SPACING[m], rng=rng), str(folder/f"{m}.nii.gz"), True)
    return motions

def probs_in_original(out:Path, case_id:str, im, original:nib.Nifti1Image, t1c_motion:sitk.Transform) -> np.ndarray:
    "The raw path's case-grid probabilities brought into the original grid by the known T1c motion (K, X, Y, Z)."
    pred = predict(out/case_id, im)
    grid = from_nifti(original)
    chans = [sitk.GetArrayFromImage(sitk.Resample(from_nifti(nib.Nifti1Image(p, pred.reference.affine)), grid, t1c_motion,
                                                  sitk.sitkLinear, 0.0)).transpose(2, 1, 0) for p in pred.probs]
    return np.stack(chans), pred

def labels_of(probs:np.ndarray, pred) -> np.ndarray:
    from neuroseg.infer import labels_from_probs, inference_config, model_postprocess
    return labels_from_probs(probs, inference_config(im.cfg), pred.convention, model_postprocess(im), 0.001)

def one_case(case:dict, convention:str, work:Path, rng:np.random.Generator) -> dict:
    original = nib.load(case["image"][0])
    ref = np.asarray(nib.load(case["label"]).dataobj)
    base = predict(case, im)
    row = dict(case=case["id"], dice_original=region_dice(base.labels, base.convention, ref, convention))
    for name, move in (("raw", True), ("control", False)):
        motions = simulate(case, work/f"{case['id']}-{name}-in", rng, move)
        tick = time.perf_counter()
        files = {m: work/f"{case['id']}-{name}-in"/f"{m}.nii.gz" for m in MODALITIES}
        record = preprocess_raw(work/f"{case['id']}-{name}", files=files, case_id=case["id"], skull_stripped=True, force=True, log=lambda *a: None)
        seconds = time.perf_counter() - tick
        probs, pred = probs_in_original(work/f"{case['id']}-{name}", case["id"], im, original, motions["t1c"])
        row[f"dice_{name}"] = region_dice(labels_of(probs, pred), pred.convention, ref, convention)
        row[f"seconds_{name}"] = round(seconds, 1)
        row[f"qc_{name}"] = record["qc"]
        if move:
            mask = sitk.Cast(from_nifti(nib.Nifti1Image((ref > 0).astype(np.float32) + (np.asarray(original.dataobj) > 0), original.affine)) > 0, sitk.sitkUInt8)
            points = brain_points(mask, 2000, 0)
            t1c_points = np.array([motions["t1c"].TransformPoint(tuple(p)) for p in points])
            row["tre_mm"] = {}
            for m in ("flair", "t1", "t2"):
                found = sitk.ReadTransform(str(work/f"{case['id']}-{name}"/"transforms"/f"t1c_to_{m}.tfm"))
                truth = np.array([motions[m].TransformPoint(tuple(p)) for p in points])
                est = np.array([found.TransformPoint(tuple(p)) for p in t1c_points])
                d = np.linalg.norm(est - truth, axis=1)
                row["tre_mm"][m] = [round(float(np.median(d)), 2), round(float(d.max()), 2)]
            row["motion"] = {m: [round(float(v), 3) for v in motions[m].GetParameters()] for m in MODALITIES}
    return row

def main():
    global im
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cases", type=int, default=16, help="how many cases (at most the 16 with expert labels)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = find_real_data()
    if data is None: sys.exit("the real BraTS cases are not here (make real-data, or NEUROSEG_REAL_DATA)")
    cases = []
    for sub in ("brats2021", "brats2023", "extra"):
        found, conv = read_brats(data/sub)
        cases += [(c, conv) for c in found]
    cases = cases[:args.cases]
    trained_on = {c["id"] for c, _ in cases if c["id"] not in read_registry()["brats"]["held_out"] and "brats2021" in c["image"][0]}
    im = load_inference_model("pretrained:brats")
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out/"raw_eval.json"   # resumable: cases already measured with this seed are kept
    rows = json.loads(saved.read_text())["rows"] if saved.is_file() and json.loads(saved.read_text())["seed"] == args.seed else []
    with tempfile.TemporaryDirectory(dir=args.out) as work:
        for index, (case, conv) in enumerate(cases):
            if case["id"] in {r["case"] for r in rows}: continue
            tick, rng = time.perf_counter(), np.random.default_rng([args.seed, index])   # one stream per case: any subset reproduces
            row = one_case(case, conv, Path(work), rng)
            rows.append(row)
            print(f"{row['case']}: TRE {row['tre_mm']}, Dice original {row['dice_original']} raw {row['dice_raw']} control "
                  f"{row['dice_control']}, {time.perf_counter() - tick:.0f} s", flush=True)
            saved.write_text(json.dumps(dict(seed=args.seed, spacing=SPACING, rows=rows), indent=2))
    for r in rows: r["held_out"] = r["case"] not in trained_on   # unseen by pretrained:brats: its held-out cases and the extra one
    saved.write_text(json.dumps(dict(seed=args.seed, spacing=SPACING, rows=rows), indent=2))
    print_tables(rows)

def print_tables(rows:list):
    print("\n| case | FLAIR TRE median / worst (mm) | T1 | T2 | path (s) |\n|---|---|---|---|---|")
    for r in rows:
        t = r["tre_mm"]
        print(f"| {r['case']} | {t['flair'][0]:.2f} / {t['flair'][1]:.2f} | {t['t1'][0]:.2f} / {t['t1'][1]:.2f} | "
              f"{t['t2'][0]:.2f} / {t['t2'][1]:.2f} | {r['seconds_raw']:.0f} |")
    med = [v[0] for r in rows for v in r["tre_mm"].values()]; worst = [v[1] for r in rows for v in r["tre_mm"].values()]
    print(f"\nTRE over {len(med)} registrations: median of medians {np.median(med):.2f} mm, largest median {max(med):.2f} mm, worst point {max(worst):.2f} mm")
    print("\n| case | trained on | Dice original WT/TC/ET | raw path | control (thick slices, no motion) |\n|---|---|---|---|---|")
    for r in rows:
        f = lambda v: " / ".join(f"{x:.3f}" for x in v)
        print(f"| {r['case']} | {'no' if r['held_out'] else 'yes'} | {f(r['dice_original'])} | {f(r['dice_raw'])} | {f(r['dice_control'])} |")
    for group, sel in (("never seen by pretrained:brats", [r for r in rows if r["held_out"]]), ("all", rows)):
        if not sel: continue
        mean = lambda k: np.mean([r[k] for r in sel], axis=0)
        print(f"\nmean over {len(sel)} cases ({group}): original {np.round(mean('dice_original'), 3)}, raw {np.round(mean('dice_raw'), 3)}, "
              f"control {np.round(mean('dice_control'), 3)}; raw - original {np.round(mean('dice_raw') - mean('dice_original'), 3)}, "
              f"raw - control {np.round(mean('dice_raw') - mean('dice_control'), 3)}")

if __name__ == "__main__":
    main()
