"""Render the report templates on a tiny real run, with the console scripts a user would type, and check the HTML.

Synthetic data (neuroseg_synth), a tiny network trained for a few epochs (neuroseg_train), predictions on the
held-out test cases (neuroseg_infer), their scores (neuroseg_evaluate), `neuroseg_report train` and `neuroseg_report
evaluate`; then the README's first case as a new user types it: the shipped model on one of those cases stored as a
BraTS case folder, `neuroseg_evaluate --ref` that folder, `neuroseg_report case` with no config. The HTML must hold
every section heading and the research-use disclaimer, no code, and load no script or style from the network; the
case report must weigh under 3 MB (its 3D view and its NiiVue viewer are pages of their own). With --browser,
headless Chromium also opens the three reports, the 3D page and the viewer, which must draw (tools/browser_check.py).
`make test` runs this; `make check-reports` runs it with --browser yes.

    python tools/check_reports.py [--out DIR] [--browser auto|yes|no]
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECTIONS = {
    "train": ["Training report", "Research use only", "Parameters and environment", "Configuration", "Data split",
              "Learning curves", "Timings", "Training hardware", "Weights &amp; Biases run"],
    "evaluate": ["Evaluation report", "Research use only", "Parameters and environment", "Summary per region",
                 "Per-case metrics", "Lesions per case", "Distributions per region", "Best, median and worst cases", "3D view", "Uncertainty"],
    "case": ["Case report", "Research use only", "Summary", "The segmentation on each modality", "Uncertainty", "3D view",
             "Viewer", "Parameters and environment"],
}
CASE_REPORT_MAX_BYTES = 3_000_000
MARKER = ".check_reports"   # marks a --out folder as ours, so that a later run may replace it
# recipes/tiny.yaml (the tests' tiny run), with enough held-out cases to show distributions and a few more steps, so
# that the tiny network predicts a tumour the 3D view can show; tracked offline, for the report's W&B section
OVERRIDES = ["data.num_folds=4", "data.test_fraction=0.375", "train.epochs=6", "train.iters_per_epoch=4", "train.val_every=2",
             "tracking.mode=offline", "tracking.project=neuroseg-check"]

def run(*cmd, env=None):
    "Run a console script; on failure print its output and stop."
    start = time.time()
    done = subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, env=env)
    print(f"  {time.time() - start:5.1f} s  {Path(str(cmd[0])).name} {' '.join(str(c) for c in cmd[1:])[:110]}")
    if done.returncode != 0:
        sys.stdout.write(done.stdout + done.stderr)
        raise SystemExit(f"check_reports: {Path(str(cmd[0])).name} failed with exit code {done.returncode}")
    return done.stdout

def link_cases(ids:list, source:Path, dest:Path) -> Path:
    "A folder of symbolic links to the `<id>.nii.gz` files of `source`: the held-out cases only."
    dest.mkdir(parents=True)
    for i in ids: (dest/f"{i}.nii.gz").symlink_to(source/f"{i}.nii.gz")
    return dest

def pipeline(work:Path) -> dict:
    "Data, training, inference, evaluation and both reports in `work`; the paths of what they wrote."
    data, run_dir = work/"data", work/"runs"/"tiny"
    settings = ["--config", "tiny", f"data.root={data}", f"train.out_dir={run_dir}", *OVERRIDES]
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    run(BIN/"neuroseg_synth", "--out", data, "--n", 8, "--shape", 32, 32, 24, "--seed", 0)
    run(BIN/"neuroseg_train", *settings, env=env)
    test_ids = json.loads((run_dir/"split.json").read_text())["test"]
    images = link_cases(test_ids, data/"imagesTr", work/"test"/"images")
    labels = link_cases(test_ids, data/"labelsTr", work/"test"/"labels")
    run(BIN/"neuroseg_infer", "--ckpt", run_dir/"checkpoints"/"best.pt", "--input", images, "--out", run_dir/"predictions")
    run(BIN/"neuroseg_evaluate", "--pred", run_dir/"predictions", "--ref", labels, "--convention", "msd", "--lesion-wise",
        "--out", run_dir/"evaluation")
    reports = work/"reports"
    run(BIN/"neuroseg_report", "train", *settings, "--out", reports)
    case = largest_prediction(run_dir/"evaluation")
    run(BIN/"neuroseg_report", "evaluate", *settings, "-p", "case", case, "--out", reports)
    # the README's first case, as a new user types it: the shipped model on a BraTS case folder, scored against the
    # folder's own *_seg file, and its report with no config
    folder = brats_case_folder(data, case, work/"brats"/f"BraTS2021_{case}")
    seg = work/"first"/"seg.nii.gz"
    run(BIN/"neuroseg_infer", "--ckpt", "pretrained:brats", "--input", folder, "--out", seg, "--save-entropy")
    scores = run(BIN/"neuroseg_evaluate", "--pred", seg, "--ref", folder, "--out", work/"first"/"evaluation")
    if "WT" not in scores: raise SystemExit(f"check_reports: neuroseg_evaluate --ref {folder.name}/ printed no WT row:\n{scores}")
    run(BIN/"neuroseg_report", "case", "-p", "pred", seg, "-p", "case", folder, "--out", reports)
    return dict(train=reports/"tiny"/"train.html", evaluate=reports/"tiny"/"evaluate.html", case=reports/folder.name/"case.html",
                test_ids=test_ids)

def brats_case_folder(data:Path, case:str, folder:Path) -> Path:
    "An MSD case of `data` as a BraTS 2021 case folder: a file per modality (FLAIR, T1, T1gd, T2) and the labels as 1/2/4."
    import nibabel as nib, numpy as np
    from neuroseg.labels import convert_labels
    folder.mkdir(parents=True)
    image, ref = nib.load(data/"imagesTr"/f"{case}.nii.gz"), nib.load(data/"labelsTr"/f"{case}.nii.gz")
    for i, m in enumerate(("flair", "t1", "t1ce", "t2")):
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj[..., i]), image.affine), folder/f"{folder.name}_{m}.nii.gz")
    labels = convert_labels(np.asarray(ref.dataobj), "msd", "brats2021").astype(np.uint8)
    nib.save(nib.Nifti1Image(labels, ref.affine), folder/f"{folder.name}_seg.nii.gz")
    return folder

def largest_prediction(eval_dir:Path) -> str:
    "The test case with the largest predicted whole tumour: the one the 3D view shows (a tiny model may predict little)."
    import csv
    rows = [r for r in csv.DictReader(open(eval_dir/"metrics.csv")) if r["region"] == "WT"]
    return max(rows, key=lambda r: float(r["pred_volume_ml"] or 0))["case"]

def shows_error(html:str) -> bool:
    "Whether a rendered notebook shows a traceback or stderr output."
    return "Traceback" in html or 'data-mime-type="application/vnd.jupyter.stderr"' in html

def html_problems(page:Path, report:str) -> list:
    "What is wrong with a rendered report: missing sections, code shown, a script or style fetched from the network."
    if not page.is_file(): return [f"{page}: not written"]
    text, problems = page.read_text(), []
    problems += [f"{page.name}: no section {s!r}" for s in SECTIONS[report] if s not in text]
    if not page.with_suffix(".ipynb").is_file(): problems.append(f"{page.name}: no executed notebook beside it")
    if "from neuroseg.report import" in text: problems.append(f"{page.name}: shows code cells")
    if re.search(r"""<(script|link|img)\b[^>]*\b(src|href)=["']?(https?:)?//""", text): problems.append(f"{page.name}: loads from the network")
    if shows_error(text): problems.append(f"{page.name}: shows an error or stderr output")
    return problems

def mesh_page(report_dir:Path) -> Path|None:
    "The 3D page the evaluation report links to."
    pages = sorted(report_dir.glob("*_mesh.html"))
    return pages[0] if pages else None

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="keep everything in this folder (default: a temporary one, removed)")
    ap.add_argument("--browser", choices=["auto", "yes", "no"], default="auto",
                    help="also open the evaluation report and the 3D page in headless Chromium (auto: when installed)")
    args = ap.parse_args()
    start = time.time()
    work = (args.out or Path(tempfile.mkdtemp(prefix="neuroseg-check-reports-"))).resolve()   # absolute: the test cases are symbolic links
    if args.out and work.exists():
        if any(work.iterdir()) and not (work/MARKER).is_file():
            raise SystemExit(f"check_reports: {work} exists and was not written by check_reports; give another --out")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work/MARKER).write_text("written by tools/check_reports.py; replaced on its next run\n")
    try:
        print(f"check_reports: tiny run in {work}")
        pages = pipeline(work)
        problems = [p for report in ("train", "evaluate", "case") for p in html_problems(pages[report], report)]
        if pages["case"].is_file() and (size := pages["case"].stat().st_size) > CASE_REPORT_MAX_BYTES:
            problems.append(f"case.html: {size / 1e6:.1f} MB, over {CASE_REPORT_MAX_BYTES / 1e6:.0f} MB")
        mesh = mesh_page(pages["evaluate"].parent)
        if mesh is None: problems.append("evaluate.html: no <case>_mesh.html page beside it")
        browser = args.browser == "yes" or (args.browser == "auto" and any(shutil.which(b) for b in ("chromium", "google-chrome")))
        if browser and mesh is not None:
            import browser_check   # beside this script: Python puts a script's folder first on sys.path
            shots = ["--screenshots", str(work/"screenshots")]
            code = browser_check.main([str(pages[r]) for r in ("train", "evaluate", "case")] + shots)   # the reports: no 3D
            viewers = sorted(pages["case"].parent.glob("*_viewer.html"))
            if not viewers: problems.append("case.html: no <case>_viewer.html page beside it")
            code |= browser_check.main([str(mesh), *map(str, viewers), "--require-3d"] + shots)   # the 3D page and the viewer draw
            if code: problems.append("browser check failed (see above)")
        elif args.browser == "auto": print("check_reports: no chromium, browser check skipped (make check-reports installs it)")
        for p in problems: print(f"FAIL {p}")
        print(f"check_reports: {'ok' if not problems else 'FAILED'} in {time.time() - start:.0f} s")
        return 1 if problems else 0
    finally:
        if not args.out: shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
