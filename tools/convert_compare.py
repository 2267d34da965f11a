"""Measure the DICOM converter dcm2niix against the reader neuroseg uses (SimpleITK/GDCM via `neuroseg.dicom.read_series`).

    python tools/convert_compare.py [--exam DIR] [--json runs/convert-compare/convert_compare.json]

Series: every subfolder of the exam (one series each; default the shared clinical exam when present) and synthetic
series written with `write_dicom_series` into a temporary folder, whose geometry is exact: plain, oblique (rotated
direction cosines), gantry tilt (slices sheared along the column direction; written without and with the CT tag
GantryDetectorTilt, which dcm2niix needs to correct tilt) and a missing slice.
Converters, run in this one process: neuroseg (`find_series` + `read_series`), dcm2niix `-z n -b y -ba y` and the
same with `-l n` (uint16 stored as int16: dcm2niix corrects tilt and fills missing slices only for signed data).
Measured per output: wall time from the folder to an array with its affine (best of 3; for dcm2niix the process and
reading its NIfTI with nibabel), shape, spacing, and in LPS, after putting the output in the reference's axis order:
the origin's distance (mm), the largest difference of direction cosines, the largest spacing difference (mm), the
farthest grid corner's distance (mm, when the shapes are equal), and |value - reference| with the reference sampled
linearly at each voxel's world position (max and mean over the voxels inside the reference). References: neuroseg's
volume, and for synthetic series the known truth (for a tilted series a sheared affine, so any orthogonal output
differs from it in direction and spacing by construction: its value difference says whether voxels are in place).
Prints a Markdown table; `--json` writes every number with dcm2niix's warnings and neuroseg's refusals. Patient
identifiers are never read: dcm2niix anonymises its sidecar (-ba y), which is only counted (some series get none).
"""
from __future__ import annotations
import argparse, json, math, os, platform, re, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
import nibabel as nib
import pydicom
import SimpleITK as sitk
from nibabel import orientations as ornt
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation
from neuroseg.core import NeurosegError
from neuroseg.dicom import find_series, read_series, write_dicom_series

EXAM = Path("/work/shared/data/raw/clinical-exam-dicom")
DCM2NIIX = str(Path(sys.executable).parent/"dcm2niix")
CONVERTERS = {"neuroseg": None, "dcm2niix": (), "dcm2niix -l n": ("-l", "n")}   # None: SimpleITK/GDCM
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
NOTE = re.compile(r"^(Warning|Gantry|Only able|Slices not|UINT16|Error)")
SYNTHETIC_NOISE = re.compile(r"Patient Position|Unable to determine manufacturer|Future release")  # what the synthetic headers lack

def sitk_affine(img:sitk.Image) -> np.ndarray:
    "The LPS voxel-to-world affine of a SimpleITK image, for (x, y, z) index order."
    a = np.eye(4)
    a[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) * np.array(img.GetSpacing())
    a[:3, 3] = img.GetOrigin()
    return a

def read_neuroseg(folder:Path) -> tuple[list, list]:
    "neuroseg's volume of the one series in `folder` as [(name, array (x, y, z), LPS affine)], and no log."
    img = read_series(find_series(folder)[0])
    return [("volume", sitk.GetArrayFromImage(img).transpose(2, 1, 0), sitk_affine(img))], []

def read_dcm2niix(folder:Path, args:tuple) -> tuple[list, list]:
    "dcm2niix's NIfTI files of `folder` as [(file, array, LPS affine)], and its warnings."
    with tempfile.TemporaryDirectory(prefix="d2n-") as out:
        run = subprocess.run([DCM2NIIX, *args, "-z", "n", "-b", "y", "-ba", "y", "-f", "%s", "-o", out, str(folder)],
                             capture_output=True, text=True)
        images = [(p.name, (im := nib.load(p)).get_fdata(dtype=np.float32), RAS_TO_LPS @ im.affine) for p in sorted(Path(out).glob("*.nii"))]
        sidecars = len(list(Path(out).glob("*.json")))
    log = [l.strip() for l in re.sub(r"(?<=\.)(Conversion required)", r"\n\1", run.stdout + run.stderr).splitlines() if NOTE.match(l)]
    return images, log + ([] if sidecars else ["no JSON sidecar written"]) + ([f"exit status {run.returncode}"] if run.returncode else [])

def best_of(read, n:int=3) -> tuple[float, tuple|str]:
    "The best wall time of `n` calls of `read` and its last result, or the NeurosegError message it raised."
    best = math.inf
    for _ in range(n):
        tick = time.perf_counter()
        try: result = read()
        except NeurosegError as e: result = str(e)
        best = min(best, time.perf_counter() - tick)
    return best, result

def in_axis_order(arr:np.ndarray, affine:np.ndarray, ref_affine:np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    "`arr` and its affine with axes permuted and flipped to follow the reference's voxel axes."
    t = ornt.ornt_transform(ornt.io_orientation(affine), ornt.io_orientation(ref_affine))
    return ornt.apply_orientation(arr, t), affine @ ornt.inv_ornt_aff(t, arr.shape)

def geometry_diff(affine:np.ndarray, ref_affine:np.ndarray, shape:tuple, ref_shape:tuple) -> dict:
    "Origin distance, largest direction-cosine and spacing differences, and (same shapes) the farthest corner's distance."
    spacing, ref_spacing = np.linalg.norm(affine[:3, :3], axis=0), np.linalg.norm(ref_affine[:3, :3], axis=0)
    corners = np.array(np.meshgrid(*[(0, n - 1) for n in shape])).reshape(3, -1)
    return dict(origin_mm=float(np.linalg.norm(affine[:3, 3] - ref_affine[:3, 3])),
                direction=float(np.abs(affine[:3, :3] / spacing - ref_affine[:3, :3] / ref_spacing).max()),
                spacing_mm=float(np.abs(spacing - ref_spacing).max()),
                corner_mm=float(np.linalg.norm((affine - ref_affine)[:3, :3] @ corners + (affine - ref_affine)[:3, 3:], axis=0).max())
                          if shape == ref_shape else None)

def value_diff(arr:np.ndarray, affine:np.ndarray, ref:np.ndarray, ref_affine:np.ndarray) -> dict:
    "|arr - ref| where ref is sampled linearly at each voxel's world position: max, mean, and the fraction inside ref."
    idx = np.indices(arr.shape, dtype=np.float64).reshape(3, -1)
    at = np.linalg.solve(ref_affine[:3, :3], affine[:3, :3] @ idx + (affine[:3, 3] - ref_affine[:3, 3])[:, None])
    at = np.where(np.abs(at - at.round()) < 1e-3, at.round(), at)
    inside = ((at >= 0) & (at <= np.array(ref.shape)[:, None] - 1)).all(0)
    diff = np.abs(arr.reshape(-1)[inside] - map_coordinates(ref.astype(np.float64), at[:, inside], order=1))
    return dict(value_max=float(diff.max()), value_mean=float(diff.mean()), inside=float(inside.mean())) if inside.any() else dict(inside=0.0)

def synthetic_series(root:Path) -> dict:
    "Synthetic series written into `root`: {name: (folder, truth array (x, y, z), truth LPS affine)}."
    x, y, z = np.indices((160, 192, 20))
    truth = np.round(1000 + 400 * np.sin(x / 9) * np.cos(y / 13) + 200 * np.cos(0.7 * z) + 3 * x)
    rotated = Rotation.from_euler("xyz", [15, -10, 20], degrees=True).as_matrix()
    cases = dict(plain=(np.eye(3), 0.0, ()), oblique=(rotated, 0.0, ()), tilt=(np.eye(3), 1.0, ()),
                 tilt_tagged=(np.eye(3), 1.0, ()), missing_slice=(np.eye(3), 0.0, (7,)))
    series = {}
    for number, (name, (direction, tilt_mm, skip)) in enumerate(cases.items(), 1):
        img = sitk.GetImageFromArray(truth.transpose(2, 1, 0).astype(np.float32))
        img.SetSpacing((0.9, 0.8, 5.0)); img.SetOrigin((-70.0, -80.0, -40.0)); img.SetDirection(direction.ravel())
        folder = write_dicom_series(img, root/name, number, name, tr=500, te=15, tilt_mm=tilt_mm, skip=skip)
        if name == "tilt_tagged": tag_tilt(folder, -math.degrees(math.atan2(tilt_mm, 5.0)))
        affine = sitk_affine(img)
        affine[:3, 2] += direction[:, 1] * tilt_mm                     # each slice shifted along the column direction
        series[f"synthetic {name}"] = (folder, truth, affine)
    return series

def tag_tilt(folder:Path, degrees:float):
    "Write GantryDetectorTilt (the sign dcm2niix estimates from the slice positions) into every file of `folder`."
    for f in folder.glob("*.dcm"):
        ds = pydicom.dcmread(f); ds.GantryDetectorTilt = f"{degrees:.4f}"; ds.save_as(f)

def measure(name:str, folder:Path, truth:np.ndarray|None, truth_affine:np.ndarray|None) -> list[dict]:
    "One row per converter output of one series: time, grid, and differences against neuroseg's volume and the truth."
    rows, ref = [], None
    for converter, args in CONVERTERS.items():
        seconds, result = best_of(lambda: read_neuroseg(folder) if args is None else read_dcm2niix(folder, args))
        if isinstance(result, str):
            rows.append(dict(series=name, converter=converter, output="refused", seconds=seconds, log=[result])); continue
        images, log = result
        for output, arr, affine in images:
            row = dict(series=name, converter=converter, output=output, seconds=seconds, shape=list(arr.shape),
                       spacing_mm=np.linalg.norm(affine[:3, :3], axis=0).round(4).tolist(), log=log)
            for key, (r, r_affine) in (("vs_neuroseg", ref or (None, None)), ("vs_truth", (truth, truth_affine))):
                if r is None or r.ndim != arr.ndim: continue
                a, a_affine = in_axis_order(arr, affine, r_affine)
                row[key] = geometry_diff(a_affine, r_affine, a.shape, r.shape) | value_diff(a, a_affine, r, r_affine)
            rows.append(row)
        if args is None: ref = images[0][1:]
    return rows

def fmt(d:dict|None) -> str:
    "Origin mm / direction / spacing mm / corner mm / max (mean) |value diff| as a table cell."
    if not d: return "-"
    values = f"{d['value_max']:.3g} ({d['value_mean']:.2g})" if "value_max" in d else "no overlap"
    corner = "-" if d["corner_mm"] is None else f"{d['corner_mm']:.2g}"
    return f"{d['origin_mm']:.2g} / {d['direction']:.2g} / {d['spacing_mm']:.2g} / {corner} / {values}"

def markdown(rows:list[dict]) -> str:
    "A Markdown table of the rows, warnings and refusals in the last column."
    lines = ["| series | converter | output | best of 3 s | shape | spacing mm | vs neuroseg (LPS): origin mm / dir / spacing mm / "
             "farthest corner mm / max (mean) abs value diff | vs truth: the same | notes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        notes = "; ".join(l for l in r["log"] if not SYNTHETIC_NOISE.search(l))
        shape = "x".join(map(str, r.get("shape", []))) or "-"
        spacing = "x".join(f"{s:g}" for s in r.get("spacing_mm", [])) or "-"
        lines.append(f"| {r['series']} | {r['converter']} | {r['output']} | {r['seconds']:.3f} | {shape} | {spacing} | "
                     f"{fmt(r.get('vs_neuroseg'))} | {fmt(r.get('vs_truth'))} | {notes} |")
    return "\n".join(lines)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exam", type=Path, default=EXAM if EXAM.is_dir() else None, help="a folder of series folders (default: the shared exam)")
    ap.add_argument("--json", type=Path, help="write every number here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="convert-compare-") as tmp:
        series = {p.name: (p, None, None) for p in sorted(a.exam.iterdir()) if p.is_dir()} if a.exam else {}
        series |= synthetic_series(Path(tmp))
        rows = [row for name, s in series.items() for row in measure(name, *s)]
    print(markdown(rows))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(exam=str(a.exam), convention="LPS", dcm2niix=subprocess.run([DCM2NIIX, "-v"], capture_output=True, text=True).stdout.split()[-1],
                    simpleitk=sitk.__version__, nibabel=nib.__version__, python=platform.python_version(), cpus=os.cpu_count(), load_1min=os.getloadavg()[0])
        a.json.write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))

if __name__ == "__main__": main()
