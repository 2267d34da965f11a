"""nnU-Net v2 against neuroseg's `pretrained:brats`: the same cases, the same 2-core CPU, the same wall-clock budget (#25).

Run from the repository root with the project venv (it scores with neuroseg_evaluate from there); nnU-Net runs from
its own venv. Nothing is written into the repository: data, venv, plans, checkpoints, logs and predictions live
outside it.

    .venv/bin/python tools/nnunet_compare.py setup      # /work/nnunet-venv: torch 2.13.0 (CPU) + nnunetv2; trainer file
    .venv/bin/python tools/nnunet_compare.py convert    # shared cases -> nnUNet_raw/Dataset501_NeurosegBraTS, splits_final.json
    .venv/bin/python tools/nnunet_compare.py plan       # nnUNetv2_plan_and_preprocess (3d_fullres, 2d); plan.json
    .venv/bin/python tools/nnunet_compare.py timing     # a short run: seconds per iteration on this CPU; timing_<config>.json
    .venv/bin/python tools/nnunet_compare.py train      # background, niced, resumable: run it again to continue (--c)
    .venv/bin/python tools/nnunet_compare.py status     # epoch, losses, pseudo Dice, checkpoints, wall time, peak memory
    .venv/bin/python tools/nnunet_compare.py predict    # nnUNetv2_predict on the held-out cases, one at a time (timed)
    .venv/bin/python tools/nnunet_compare.py score      # both tools scored by neuroseg_evaluate; comparison.{json,md}

`train` starts a detached worker (nohup, nice 19, its own session) that runs nnUNetv2_train, adding --c whenever a
checkpoint exists (one is written after every epoch), and records each run's wall time and peak memory in
WORK/logs/train_fold<f>_segments.json; its output goes to WORK/logs/train_fold<f>.out, nnU-Net's own log to
nnUNet_results/.../fold_<f>/training_log_*.txt. After a kill (or a reboot) run `train` again: it
continues from the last finished epoch. To stop it cleanly: `kill <first pid in WORK/logs/train_fold<f>.pid>`.
`--config 2d` (before the subcommand) runs the same steps for nnU-Net's 2d configuration.

Paths: NNUNET_WORK (default /work/nnunet-work: nnUNet_raw, nnUNet_preprocessed, nnUNet_results, logs, predictions,
scores), NNUNET_VENV (default /work/nnunet-venv), NEUROSEG_REAL_DATA (default /work/shared/data/real).

The cases (configs/brats-real-split.json, as pretrained:brats; neuroseg/models/models.json `brats`):
- Training: the 10 non-held-out brats2021 cases; nnU-Net's 5 folds are the split file's folds (splits_final.json),
  and the run trains fold 0 (train on folds 1-4, validate on fold 0), as pretrained:brats's steps 1-3 did.
  `train --fold all` trains on all 10 (its step 4 did).
- Held out (predicted and scored): the split's 4 `test` cases and brats2023/BraTS-GLI-00000-000; also the 16th
  expert-labelled case extra/Brats18_2013_21_1, scored apart (its own row; the 5-case mean is the headline).
- Labels: nnU-Net wants consecutive labels, so BraTS 2017-2021's 4 (ET) becomes 3; the result is the BraTS 2023
  convention (1 NCR, 2 edema, 3 ET), which the 2023 case already uses. Training is region-based, as nnU-Net's own
  BraTS 2021 example (Dataset137): sigmoid outputs for WT (1,2,3), TC (1,3), ET (3), painted back with
  regions_class_order (2, 1, 3). (The example renumbers to 1 edema, 2 NCR, 3 ET and paints (1, 2, 3); the same
  regions, one relabelling fewer here.) Predictions go back to each case's convention on its original grid.
- Channels: 0 FLAIR (t2f), 1 T1 (t1n), 2 T1gd (t1c), 3 T2 (t2w): the MSD Task01 order (nnU-Net's example uses T1, T1ce,
  T2, FLAIR; all four get nnU-Net's z-score normalisation either way, so the order does not change the model).

The budget: pretrained:brats's four training steps took 1 h 50 min + 60 min + 67 min + 10 min = 247 min of wall time
on these 2 cores (nbs/05c_pretrained.ipynb, "Commands and wall times"; upper bounds on a shared CPU; 10,125 steps of
2 volumes x 2 patches of 64^3 at 1.5 mm). nnU-Net gets the same 247 min (14,820 s) for the epochs of `nnUNetv2_train`
(its per-epoch validation included; its final sliding-window validation of the 2 fold-0 cases is evaluation, timed
apart, as neuroseg's 42-min cross-validation was), on the same CPU, niced (`-device cpu`, 2 threads, one
augmentation worker). Its GPU defaults (1000 epochs of 250 iterations) would take weeks here, so the trainer
tools/nnunet/nnUNetTrainer_NeurosegCPU.py keeps everything of nnU-Net's default trainer except the schedule:
fewer iterations per epoch, epochs fitted to the budget from the measured seconds per iteration (`timing`), and a
checkpoint every epoch. 3d_fullres is nnU-Net's configuration for BraTS (its planner chooses no 3d_lowres for these
volumes); the measurement below decides whether it can make progress at this budget.

Measured and decided (`timing`, 2026-12-07, nice 19 on the 2 cores shared with other work, load average 6-7;
records in WORK/timing_<config>.json; nnU-Net's plan in WORK/plan.json):
- Plan (nnunetv2 2.8.1, default ExperimentPlanner): 3d_fullres patch 128x128x128 at 1.0 mm, batch 2, PlainConvUNet of
  6 stages (32-320 features), z-score per channel; 2d patch 192x160, batch 54 (32-512 features); no 3d_lowres.
- 3d_fullres: 170-174 s per training iteration (steps 2-3 of a timing run; the first, 200 s, warms up), about 3 min of
  one busy core per 2 x 128^3 patches. 2d: 58-67 s per iteration (54 slices of 192x160).
- Decision, fixed before training: 3d_fullres, nnU-Net's configuration for BraTS, with 4 iterations and 1 validation
  iteration per epoch and 19 epochs: 19 x (4 x 174 + 1 x ~58 + 5) s = 14,430 s, within the 14,820 s budget; 76
  iterations, 152 patches of 128^3 (nnU-Net's default schedule: 250,000 iterations). It makes little progress at
  this budget; 2d would get about 3x the iterations (21 epochs of 10 at this load: `--config 2d`, its timing in
  WORK/timing_2d.json) and is the second run to make, same budget, if 3d_fullres ends far behind.
- The CPU share decides the numbers: the same schedule on a quiet machine takes less wall time. `status` and
  `score` report the wall time actually used.

Result (2026-12-07; `predict --disable-tta`, then `score --disable-tta`; WORK/score/<tag>/comparison.{json,md}): the 19
epochs took 233 min (10.7 GiB peak); on the 5 held-out cases nnU-Net scored Dice 0.604 / 0.338 / 0.000 (WT / TC / ET)
against pretrained:brats's 0.805 / 0.615 / 0.445 as shipped (0.821 / 0.687 / 0.668 with --postprocess none), 97 s a
case without TTA against 7.8 s. It never predicts enhancing tumour after 76 iterations. Its default TTA (8 mirrored
passes per window) was not run at this cost.
"""
from __future__ import annotations
import argparse, json, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("NNUNET_WORK", "/work/nnunet-work"))
VENV = Path(os.environ.get("NNUNET_VENV", "/work/nnunet-venv"))
REAL = Path(os.environ.get("NEUROSEG_REAL_DATA", "/work/shared/data/real"))
SPLIT = ROOT/"configs"/"brats-real-split.json"
TRAINER_FILE = ROOT/"tools"/"nnunet"/"nnUNetTrainer_NeurosegCPU.py"
CONSTRAINTS = ROOT/"tools"/"nnunet"/"constraints.txt"
DATASET_ID, DATASET = 501, "Dataset501_NeurosegBraTS"
TRAINER, TIMING_TRAINER, CONFIG = "nnUNetTrainer_NeurosegCPU", "nnUNetTrainer_NeurosegCPUTiming", "3d_fullres"
BUDGET_S = 247 * 60
TORCH = "torch==2.13.0"
CASE_2023, CASE_EXTRA = "BraTS-GLI-00000-000", "Brats18_2013_21_1"
CHANNELS = {"0": "FLAIR", "1": "T1", "2": "T1gd", "3": "T2"}
SUFFIXES = {"brats2021": ("flair", "t1", "t1ce", "t2"), "brats2023": ("t2f", "t1n", "t1c", "t2w")}
REGIONS = ("WT", "TC", "ET")
# What trained pretrained:brats (nbs/05c_pretrained.ipynb). Its first 64^3 model (sha256 201c98e8..., 2026-12-05)
# was what nnU-Net's budget was fitted to: 247 min, 10,125 steps of 64^3 on real cases (1125 + 2000 + 6000 on the 8
# of fold 0's training folds, 1000 on all 10).
NEUROSEG = dict(name="neuroseg pretrained:brats", wall_min=193 + 8, steps="3050 + 400", patches_per_step=4,
                patch="64^3 (synthetic brains), then 80^3 (real cases)", spacing_mm=1.5, cases=11,
                note="pretrained:synth (3050 steps on synthetic brains, 193 min) fine-tuned for 400 steps on all 11 "
                "training cases (recipes/brats-synth80-all.yaml); wall times from nbs/05c_pretrained.ipynb; peak "
                "memory not recorded")


# ---------------------------------------------------------------- helpers
def log(msg: str):
    "Print a progress line, flushed."
    print(f"[nnunet_compare {time.strftime('%H:%M:%S')}] {msg}", flush=True)

def split() -> dict:
    "The split file pretrained:brats used."
    return json.loads(SPLIT.read_text())

def train_cases() -> list[str]:
    "The 10 non-held-out cases, fold by fold."
    return [c for fold in split()["folds"] for c in fold]

def test_cases() -> list[str]:
    "The 5 held-out cases (the split's test ids and the BraTS 2023 case), then the extra expert-labelled case if present."
    extra = [CASE_EXTRA] if (REAL/"extra"/CASE_EXTRA/f"{CASE_EXTRA}_seg.nii.gz").exists() else []
    return split()["test"] + [CASE_2023] + extra

def case_dir(case: str) -> Path:
    "The shared folder of a case."
    if case == CASE_2023: return REAL/"brats2023"/case
    if case == CASE_EXTRA: return REAL/"extra"/case
    return REAL/split()["root"]/case

def convention(case: str) -> str:
    "brats2023 for the 2023 case, else brats2021."
    return "brats2023" if case == CASE_2023 else "brats2021"

def modality_file(case: str, key: str) -> Path:
    "A case's image or label file (key: a modality suffix or seg)."
    sep = "-" if convention(case) == "brats2023" else "_"
    return case_dir(case)/f"{case}{sep}{key}.nii.gz"

def nnunet_env() -> dict:
    "Environment for nnU-Net commands: its folders, CPU-friendly worker counts, no torch.compile."
    env = dict(os.environ, nnUNet_raw=str(WORK/"nnUNet_raw"), nnUNet_preprocessed=str(WORK/"nnUNet_preprocessed"),
               nnUNet_results=str(WORK/"nnUNet_results"), nnUNet_n_proc_DA=os.environ.get("nnUNet_n_proc_DA", "1"),
               nnUNet_compile="f", PATH=f"{VENV/'bin'}:{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    return env

def nnunet_bin(name: str) -> str:
    "Path of an nnU-Net console script in its venv."
    return str(VENV/"bin"/name)

def run_timed(cmd: list, log_file: Path | None = None, env: dict | None = None, nice: bool = True) -> dict:
    "Run a command (niced), wait; its wall seconds, peak RSS (MiB, from wait4) and exit code."
    cmd = (["nice", "-n", "19"] if nice else []) + [str(c) for c in cmd]
    out = open(log_file, "a") if log_file else None
    tick = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out or subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    text = proc.stdout.read() if not out else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if out: out.close()
    return dict(cmd=" ".join(cmd), seconds=time.perf_counter() - tick, peak_rss_mib=usage.ru_maxrss / 1024,
                rc=proc.returncode, output=text[-3000:])

def check(result: dict, what: str) -> dict:
    "Stop with the command's output when it failed."
    if result["rc"]: sys.exit(f"{what} failed (exit {result['rc']}): {result['cmd']}\n{result['output']}")
    return result

def save_json(path: Path, obj):
    "Write JSON, creating folders."
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=str) + "\n")

def load_json(path: Path, default=None):
    "Read JSON, or default when the file is missing."
    return json.loads(path.read_text()) if path.exists() else default

def schedule() -> tuple[int, int, int]:
    "(epochs, iterations, validation iterations) of CONFIG in the trainer file's SCHEDULES."
    m = re.search(rf'"{CONFIG}": \((\d+), (\d+), (\d+)\)', TRAINER_FILE.read_text())
    if not m: sys.exit(f"{TRAINER_FILE}: no schedule for {CONFIG}")
    return tuple(int(x) for x in m.groups())

def results_folder(fold: str, trainer: str = TRAINER) -> Path:
    "nnU-Net's output folder of one fold."
    return WORK/"nnUNet_results"/DATASET/f"{trainer}__nnUNetPlans__{CONFIG}"/f"fold_{fold}"


# ---------------------------------------------------------------- setup
def venv_versions() -> dict:
    "Versions of torch, nnunetv2 and friends in the nnU-Net venv."
    code = ("import importlib.metadata as m, json, sys; print(json.dumps({p: m.version(p) for p in "
            "['torch','torchvision','nnunetv2','dynamic-network-architectures','batchgenerators','batchgeneratorsv2',"
            "'SimpleITK','numpy']} | {'python': sys.version.split()[0]}))")
    done = subprocess.run([str(VENV/"bin"/"python"), "-c", code], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}

def install_trainer() -> Path:
    "Copy our trainer file into nnunetv2/training/nnUNetTrainer/ of the venv."
    code = "import nnunetv2, os; print(os.path.dirname(nnunetv2.__file__))"
    pkg = Path(subprocess.run([str(VENV/"bin"/"python"), "-c", code], capture_output=True, text=True, check=True).stdout.strip())
    dest = pkg/"training"/"nnUNetTrainer"/TRAINER_FILE.name
    shutil.copyfile(TRAINER_FILE, dest)
    return dest

def cmd_setup(a):
    "Create the nnU-Net venv (CPU torch 2.13.0, then nnunetv2 under constraints), install the trainer file, record versions."
    logf = WORK/"logs"/"setup.log"
    logf.parent.mkdir(parents=True, exist_ok=True)
    if not (VENV/"bin"/"python").exists(): check(run_timed(["python3", "-m", "venv", VENV], logf), "venv")
    if "nnunetv2" not in venv_versions():
        check(run_timed([VENV/"bin"/"pip", "install", TORCH], logf), "pip install torch")
        check(run_timed([VENV/"bin"/"pip", "install", "nnunetv2", "-c", CONSTRAINTS], logf), "pip install nnunetv2")
    versions = venv_versions()
    if not versions.get("torch", "").startswith("2.13.0"): sys.exit(f"torch in {VENV} is {versions.get('torch')}, not 2.13.0")
    dest = install_trainer()
    save_json(WORK/"versions.json", versions | dict(trainer_file=str(dest)))
    log(f"versions {versions}; trainer -> {dest}")


# ---------------------------------------------------------------- convert
def write_label(src: Path, dst: Path, case: str):
    "Copy a label map as uint8 in nnU-Net's labels (BraTS 2021's 4 -> 3), keeping the grid."
    import nibabel as nib, numpy as np
    img = nib.load(str(src))
    lab = np.asarray(img.dataobj).round().astype(np.uint8)
    values = set(np.unique(lab).tolist())
    allowed = {0, 1, 2, 4} if convention(case) == "brats2021" else {0, 1, 2, 3}
    if not values <= allowed: sys.exit(f"{src}: labels {sorted(values)} outside {sorted(allowed)}")
    if convention(case) == "brats2021": lab[lab == 4] = 3
    hdr = img.header.copy()
    hdr.set_data_dtype(np.uint8)
    hdr["scl_slope"], hdr["scl_inter"] = 1, 0
    nib.save(nib.Nifti1Image(lab, img.affine, hdr), str(dst))

def link_images(case: str, folder: Path):
    "Symlink a case's four images into folder as <case>_000c.nii.gz (channel order CHANNELS; no copy)."
    folder.mkdir(parents=True, exist_ok=True)
    for c, key in enumerate(SUFFIXES[convention(case)]):
        src, dst = modality_file(case, key), folder/f"{case}_{c:04d}.nii.gz"
        if not src.exists(): sys.exit(f"missing {src}")
        if dst.is_symlink() or dst.exists(): dst.unlink()
        dst.symlink_to(src)

def dataset_json() -> dict:
    "nnU-Net's dataset.json: four channels, region-based labels as its BraTS example."
    return {"channel_names": CHANNELS,
            "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [1, 3], "enhancing tumor": [3]},
            "regions_class_order": [2, 1, 3], "numTraining": len(train_cases()), "file_ending": ".nii.gz",
            "name": "NeurosegBraTS", "description": "neuroseg #25: the 10 training cases of configs/brats-real-split.json; "
            "labels 1 NCR, 2 edema, 3 ET (BraTS 2021's 4 -> 3); images are symlinks to /work/shared/data/real",
            "reference": "BraTS (Menze 2015, Bakas 2017, Baid 2021); TCIA", "licence": "BraTS / TCIA terms"}

def splits_final() -> list[dict]:
    "nnU-Net's 5 folds, the split file's: fold k validates on folds[k] and trains on the rest."
    folds = split()["folds"]
    return [{"train": [c for j, f in enumerate(folds) if j != k for c in f], "val": list(folds[k])} for k in range(len(folds))]

def write_splits():
    "Write (or check) splits_final.json in nnUNet_preprocessed so that nnU-Net uses our folds."
    path = WORK/"nnUNet_preprocessed"/DATASET/"splits_final.json"
    if load_json(path) not in (None, splits_final()): sys.exit(f"{path}: differs from {SPLIT}; remove it to rewrite")
    save_json(path, splits_final())
    return path

def cmd_convert(a):
    "Shared cases -> nnUNet_raw (images symlinked, labels relabelled), dataset.json, splits_final.json."
    raw = WORK/"nnUNet_raw"/DATASET
    for case in train_cases():
        link_images(case, raw/"imagesTr")
        (raw/"labelsTr").mkdir(parents=True, exist_ok=True)
        write_label(modality_file(case, "seg"), raw/"labelsTr"/f"{case}.nii.gz", case)
    for case in test_cases(): link_images(case, raw/"imagesTs")
    save_json(raw/"dataset.json", dataset_json())
    log(f"{raw}: {len(train_cases())} training cases, {len(test_cases())} test cases; splits -> {write_splits()}")


# ---------------------------------------------------------------- plan
def plan_summary() -> dict:
    "What nnU-Net's planner chose per configuration (patch, spacing, batch, network), from nnUNetPlans.json."
    plans = load_json(WORK/"nnUNet_preprocessed"/DATASET/"nnUNetPlans.json")
    def one(cfg):
        arch = cfg.get("architecture", {}).get("arch_kwargs", {})
        return dict(patch_size=cfg["patch_size"], spacing=cfg["spacing"], batch_size=cfg["batch_size"],
                    median_image_size=cfg.get("median_image_size_in_voxels"), normalization=cfg.get("normalization_schemes"),
                    n_stages=arch.get("n_stages"), features_per_stage=arch.get("features_per_stage"), strides=arch.get("strides"),
                    network=cfg.get("architecture", {}).get("network_class_name"))
    return {name: one(cfg) for name, cfg in plans["configurations"].items()}

def cmd_plan(a):
    "nnUNetv2_plan_and_preprocess for 3d_fullres (niced, -np 1), then record the plan in WORK/plan.json."
    r = check(run_timed([nnunet_bin("nnUNetv2_plan_and_preprocess"), "-d", DATASET_ID, "-c", *a.configs, "-np", a.np,
                         "--verify_dataset_integrity"], WORK/"logs"/"plan.log", nnunet_env()), "plan_and_preprocess")
    write_splits()
    summary = plan_summary() | dict(preprocessing=dict(seconds=round(r["seconds"]), peak_rss_mib=round(r["peak_rss_mib"])))
    save_json(WORK/"plan.json", summary)
    log(json.dumps(summary))


# ---------------------------------------------------------------- timing
def timing_from_log(folder: Path) -> dict:
    "Median seconds of training and validation steps (after the first) from the timing trainer's log."
    text = "\n".join(p.read_text() for p in sorted(folder.glob("training_log_*.txt")))
    def med(kind, field):
        xs = [float(x) for x in re.findall(rf"neuroseg-timing {kind} compute ([\d.]+) s, since previous ([\d.]+) s", text)
              for x in [x[0 if field == "compute" else 1]]][1 if field == "compute" else 2:]   # wall: since the 2nd step
        return sorted(xs)[len(xs) // 2] if xs else None
    return dict(train_compute_s=med("train", "compute"), train_wall_s=med("train", "wall"),
                val_compute_s=med("val", "compute"), val_wall_s=med("val", "wall"))

def fit_epochs(t: dict, iterations: int, val_iterations: int, final_val_s: float) -> dict:
    "Epochs of `iterations` training and `val_iterations` validation steps that fit BUDGET_S with the final validation."
    val_s = t["val_wall_s"] or t["val_compute_s"] or t["train_wall_s"] / 3   # forward only: about a third, if not measured
    epoch_s = iterations * t["train_compute_s"] + val_iterations * val_s + 5
    return dict(epoch_s=round(epoch_s, 1), final_validation_s=final_val_s,
                epochs=int((BUDGET_S - final_val_s) // epoch_s), iterations=iterations, val_iterations=val_iterations)

def cmd_timing(a):
    "A short run of the timing trainer (1 epoch, 6 iterations) on fold 0: seconds per iteration on this CPU."
    folder = results_folder("0", TIMING_TRAINER)
    if folder.exists() and not a.reuse: shutil.rmtree(folder)
    if not a.reuse:
        check(run_timed([nnunet_bin("nnUNetv2_train"), DATASET_ID, CONFIG, "0", "-tr", TIMING_TRAINER, "-device", "cpu"],
                        WORK/"logs"/f"timing_{CONFIG}.log", nnunet_env()), "timing run")
    t = timing_from_log(folder)
    plan = load_json(WORK/"plan.json", {}).get(CONFIG)
    result = dict(t, config=CONFIG, plan=plan, fit=fit_epochs(t, a.iterations, a.val_iterations, a.final_val_s),
                  budget_s=BUDGET_S, when=time.strftime("%Y-%m-%d %H:%M"))
    save_json(WORK/f"timing_{CONFIG}.json", result)
    log(json.dumps(result))


# ---------------------------------------------------------------- train
def pid_alive(pid: int) -> bool:
    "Whether a process exists."
    try: os.kill(pid, 0); return True
    except (ProcessLookupError, PermissionError): return False
    except OSError: return False

def train_pid_file(fold: str) -> Path:
    "The worker's pid file."
    return WORK/"logs"/f"train_fold{fold}.pid"

def running_worker(fold: str) -> int | None:
    "The pid of this fold's training worker, or of its nnUNetv2_train (which may outlive a killed worker), if one runs."
    pid_file = train_pid_file(fold)
    if not pid_file.exists(): return None
    return next((int(p) for p in pid_file.read_text().split() if pid_alive(int(p))), None)

def cmd_train(a):
    "Start (or continue) nnUNetv2_train in the background: niced, detached, resumable; logs in WORK/logs."
    if (pid := running_worker(a.fold)): return log(f"fold {a.fold}: training already runs (pid {pid}); stop it with kill {pid}")
    out = WORK/"logs"/f"train_fold{a.fold}.out"
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["nohup", "nice", "-n", "19", sys.executable, __file__, "--config", CONFIG, "_worker", "--fold", a.fold],
                            stdout=open(out, "a"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=ROOT)
    train_pid_file(a.fold).write_text(f"{proc.pid}\n")
    log(f"fold {a.fold}: worker pid {proc.pid}; log {out}; nnU-Net log in {results_folder(a.fold)}")

def pss_bytes(pid: int) -> int:
    "Proportional set size of a process (shared pages split among their users), from /proc/<pid>/smaps_rollup."
    try:
        m = re.search(r"^Pss:\s+(\d+) kB", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M)
        return int(m.group(1)) * 1024 if m else 0
    except OSError: return 0

def tree_rss_mib(root: int) -> float:
    "Memory (MiB) of a process and all its descendants (augmentation workers): the sum of their PSS, from /proc."
    parents = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit(): continue
        try:
            stat = (d/"stat").read_text()
            parents[int(d.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError): continue
    tree, grew = {root}, True
    while grew:
        new = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= new
        grew = bool(new)
    return sum(pss_bytes(p) for p in tree) / 2**20

def cmd_worker(a):
    "The background worker: run nnUNetv2_train (with --c when a checkpoint exists), record wall time and memory."
    folder, segs_file = results_folder(a.fold), WORK/"logs"/f"train_fold{a.fold}_segments.json"
    if (folder/"checkpoint_final.pth").exists() and (folder/"validation"/"summary.json").exists():
        return log(f"fold {a.fold}: finished already ({folder})")
    resume = any((folder/f).exists() for f in ("checkpoint_latest.pth", "checkpoint_final.pth", "checkpoint_best.pth"))
    cmd = [nnunet_bin("nnUNetv2_train"), str(DATASET_ID), CONFIG, a.fold, "-tr", TRAINER, "-device", "cpu"] + (["--c"] if resume else [])
    segs = load_json(segs_file, [])
    seg = dict(start=time.strftime("%Y-%m-%d %H:%M:%S"), cmd=" ".join(cmd), resumed=resume, seconds=0, peak_tree_rss_mib=0, rc=None)
    segs.append(seg)
    log(f"start: {seg['cmd']}")
    tick = time.time()
    proc = subprocess.Popen(cmd, env=nnunet_env(), stdin=subprocess.DEVNULL, start_new_session=True)
    train_pid_file(a.fold).write_text(f"{os.getpid()} {proc.pid}\n")
    def stop(signum, _frame):
        "Stop nnUNetv2_train and its augmentation workers (its process group); record the segment."
        os.killpg(proc.pid, signal.SIGTERM)
        _, status, usage = os.wait4(proc.pid, 0)
        seg.update(seconds=round(time.time() - tick), rc=f"stopped by signal {signum}", peak_rss_mib_wait4=round(usage.ru_maxrss / 1024))
        save_json(segs_file, segs)
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        seg["seconds"] = round(time.time() - tick)
        if pid:
            seg["rc"], seg["peak_rss_mib_wait4"] = os.waitstatus_to_exitcode(status), round(usage.ru_maxrss / 1024)
            save_json(segs_file, segs)
            return log(f"nnUNetv2_train ended: exit {seg['rc']} after {seg['seconds']} s")
        seg["peak_tree_rss_mib"] = max(seg["peak_tree_rss_mib"], round(tree_rss_mib(proc.pid)))
        save_json(segs_file, segs)
        time.sleep(20)


# ---------------------------------------------------------------- status
def parse_training_log(folder: Path) -> dict:
    "Epochs, last losses, pseudo Dice and epoch times from nnU-Net's training logs of a fold."
    text = "\n".join(p.read_text() for p in sorted(folder.glob("training_log_*.txt")))
    epochs = [int(x) for x in re.findall(r"^.*Epoch (\d+)\s*$", text, re.M)]
    times = [float(x) for x in re.findall(r"Epoch time: ([\d.]+) s", text)]
    last = lambda pat: (re.findall(pat, text) or [None])[-1]
    return dict(last_epoch_started=max(epochs) if epochs else None, epochs_finished=len(times),
                mean_epoch_s=round(sum(times[-5:]) / len(times[-5:]), 1) if times else None,
                train_loss=last(r"train_loss (\S+)"), val_loss=last(r"val_loss (\S+)"),
                pseudo_dice=last(r"Pseudo dice (\[.*?\])"), best_ema=last(r"Yayy! New best EMA pseudo Dice: (\S+)"))

def training_state(fold: str) -> dict:
    "Where one fold's training stands: worker, nnU-Net log, checkpoints, wall time, memory."
    folder = results_folder(fold)
    segs = load_json(WORK/"logs"/f"train_fold{fold}_segments.json", [])
    ckpts = {p.name: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p.stat().st_mtime)) for p in sorted(folder.glob("checkpoint_*.pth"))}
    state = dict(fold=fold, folder=str(folder), worker_pid=running_worker(fold), checkpoints=ckpts,
                 planned_epochs=None, wall_s=sum(s["seconds"] for s in segs), segments=len(segs),
                 peak_rss_mib=max([max(s.get("peak_tree_rss_mib", 0), s.get("peak_rss_mib_wait4", 0)) for s in segs] or [0]),
                 finished=(folder/"checkpoint_final.pth").exists(), validation=load_json(folder/"validation"/"summary.json", {}).get("foreground_mean"))
    state["planned_epochs"] = schedule()[0]
    return state | parse_training_log(folder) if folder.exists() else state

def cmd_status(a):
    "Print where training stands (and the setup, plan and timing records)."
    for name in ("versions.json", "plan.json", f"timing_{CONFIG}.json"):
        if (WORK/name).exists(): print(f"{name}: {(WORK/name).read_text().strip()[:1500]}")
    s = training_state(a.fold)
    done = s.get("epochs_finished") or 0
    if s.get("mean_epoch_s") and s["planned_epochs"]:
        s["eta_min"] = round((s["planned_epochs"] - done) * s["mean_epoch_s"] / 60)
    print(json.dumps(s, indent=1))
    if not s["worker_pid"] and not s["finished"]:
        print(f"not running: continue with `.venv/bin/python tools/nnunet_compare.py train --fold {a.fold}`")


# ---------------------------------------------------------------- predict
def pred_tag(a) -> str:
    "The predictions folder name: configuration, fold, checkpoint, TTA."
    return a.tag or f"{CONFIG}_fold{a.fold}_{a.checkpoint.replace('.pth', '')}{'_notta' if a.disable_tta else ''}"

def cmd_predict(a):
    "nnUNetv2_predict on each held-out case alone (model load included, as a user runs it): timed, peak memory."
    tag = pred_tag(a)
    out, timings = WORK/"predictions"/tag, {}
    for case in test_cases():
        inp = WORK/"predict_in"/case
        link_images(case, inp)
        cmd = [nnunet_bin("nnUNetv2_predict"), "-i", inp, "-o", out, "-d", DATASET_ID, "-c", CONFIG, "-f", a.fold,
               "-tr", TRAINER, "-chk", a.checkpoint, "-device", "cpu", "-npp", "1", "-nps", "1"] + (["--disable_tta"] if a.disable_tta else [])
        r = check(run_timed(cmd, WORK/"logs"/f"predict_{tag}.log", nnunet_env()), f"predict {case}")
        timings[case] = dict(seconds=round(r["seconds"], 1), peak_rss_mib=round(r["peak_rss_mib"]))
        log(f"{case}: {timings[case]}")
    save_json(out/"timings.json", dict(tag=tag, fold=a.fold, checkpoint=a.checkpoint, tta=not a.disable_tta, cases=timings))


# ---------------------------------------------------------------- score
def to_brats_labels(src: Path, dst: Path, case: str):
    "An nnU-Net prediction (1 NCR, 2 edema, 3 ET) in the case's own convention (2021: 3 -> 4), same grid."
    import nibabel as nib, numpy as np
    img = nib.load(str(src))
    lab = np.asarray(img.dataobj).astype(np.uint8)
    if convention(case) == "brats2021": lab[lab == 3] = 4
    dst.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(lab, img.affine, img.header), str(dst))

def group(case: str) -> str:
    "The evaluation group of a case (cases of one convention and one reference folder)."
    return "extra" if case == CASE_EXTRA else convention(case)

def evaluate(pred_root: Path, out: Path) -> list[dict]:
    "neuroseg_evaluate on each group of predictions; the region rows."
    import csv
    rows = []
    for g in sorted({group(c) for c in test_cases()}):
        cases = [c for c in test_cases() if group(c) == g]
        ref = case_dir(cases[0]) if len(cases) == 1 else case_dir(cases[0]).parent
        extra = ["--split", SPLIT, "--subset", "test"] if g == "brats2021" else []
        pred = pred_root/g if len(cases) > 1 else pred_root/g/f"{cases[0]}.nii.gz"
        check(run_timed([ROOT/".venv"/"bin"/"neuroseg_evaluate", "--pred", pred, "--ref", ref, *extra,
                         "--convention", convention(cases[0]), "--lesion_wise", "--out", out/f"eval_{g}"], nice=True), f"evaluate {g}")
        with open(out/f"eval_{g}"/"metrics.csv") as f:
            rows += [r | dict(group=g) for r in csv.DictReader(f) if r["region"] in REGIONS]
    return rows

def neuroseg_predict(out: Path, ckpt: str, postprocess: str = "model") -> dict:
    "neuroseg_infer on each held-out case alone (timed, peak memory) into out/<group>/<case>.nii.gz; cases done are kept."
    timings_file = out/"timings.json"
    timings = load_json(timings_file, {})
    for case in test_cases():
        dst = out/group(case)/f"{case}.nii.gz"
        if case in timings and dst.exists(): continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        r = check(run_timed([ROOT/".venv"/"bin"/"neuroseg_infer", "--ckpt", ckpt, "--input", case_dir(case), "--convention",
                             convention(case), "--postprocess", postprocess, "--out", dst]), f"neuroseg_infer {case}")
        timings[case] = dict(seconds=round(r["seconds"], 1), peak_rss_mib=round(r["peak_rss_mib"]))
        save_json(timings_file, timings)
    return timings

def means(rows: list[dict], cases: list[str]) -> dict:
    "Mean Dice, HD95 and volumes per region over the given cases."
    pick = lambda r, k: [float(x[k]) for x in rows if x["region"] == r and x["case"] in cases]
    keys = ("dice", "hd95", "pred_volume_ml", "ref_volume_ml", "lesion_brats2023_dice", "lesion_brats2023_fp")
    return {r: {k: round(sum(pick(r, k)) / max(1, len(pick(r, k))), 4) for k in keys} for r in REGIONS}

def tool_record(name: str, rows: list, timings: dict, training: dict) -> dict:
    "One tool's scores (5 held-out cases; with the extra case), timings and training facts."
    five = split()["test"] + [CASE_2023]
    secs = [t["seconds"] for t in timings.values()]
    return dict(name=name, training=training, rows=rows, mean_5=means(rows, five), mean_all=means(rows, test_cases()),
                inference=dict(cases=timings, mean_s=round(sum(secs) / len(secs), 1),
                               peak_rss_mib=max(t["peak_rss_mib"] for t in timings.values())))

def nnunet_training_facts(fold: str) -> dict:
    "What nnU-Net got: epochs, iterations, patches, patch size, spacing, wall time, peak memory."
    s, plan = training_state(fold), load_json(WORK/"plan.json", {}).get(CONFIG, {})
    iters = schedule()[1]
    epochs = s.get("epochs_finished") or 0
    return dict(fold=fold, cases=len(splits_final()[0]["train"]) if fold != "all" else len(train_cases()),
                epochs=epochs, iterations_per_epoch=iters, steps=epochs * iters, batch_size=plan.get("batch_size"),
                patches=epochs * iters * (plan.get("batch_size") or 0), patch=plan.get("patch_size"), spacing_mm=plan.get("spacing"),
                wall_min=round(s["wall_s"] / 60), peak_rss_mib=s["peak_rss_mib"], budget_min=BUDGET_S // 60, finished=s["finished"])

def markdown(tools: list[dict]) -> str:
    "The side-by-side table and the per-case table."
    f = lambda x, d=3: f"{x:.{d}f}"
    lines = ["| tool | training | wall | peak mem | inference s/case | " + " | ".join(f"Dice {r}" for r in REGIONS) + " | "
             + " | ".join(f"HD95 {r}" for r in REGIONS) + " | " + " | ".join(f"lesion-wise Dice {r}" for r in REGIONS)
             + " | false-positive lesions per case (WT/TC/ET) | " + " | ".join(f"vol {r} pred/ref" for r in REGIONS) + " |", "|" + "---|" * 18]
    for t in tools:
        tr, m = t["training"], t["mean_5"]
        what = (f"{tr['steps']} steps x {tr['patches_per_step']} patches {tr['patch']} @ {tr['spacing_mm']} mm" if "patches_per_step" in tr else
                f"{tr['epochs']} epochs x {tr['iterations_per_epoch']} it x batch {tr['batch_size']} ({tr['patches']} patches {tr['patch']} @ {tr['spacing_mm']} mm)")
        mem = f"{tr['peak_rss_mib'] / 1024:.1f} GiB" if tr.get("peak_rss_mib") else "not recorded"
        lines.append(f"| {t['name']} | {what} | {tr['wall_min']} min | {mem} | {t['inference']['mean_s']} | "
                     + " | ".join(f(m[r]["dice"]) for r in REGIONS) + " | " + " | ".join(f(m[r]["hd95"], 1) for r in REGIONS) + " | "
                     + " | ".join(f(m[r]["lesion_brats2023_dice"]) for r in REGIONS) + " | "
                     + "/".join(f"{m[r]['lesion_brats2023_fp']:.1f}" for r in REGIONS) + " | "
                     + " | ".join(f"{m[r]['pred_volume_ml']:.1f}/{m[r]['ref_volume_ml']:.1f}" for r in REGIONS) + " |")
    lines += ["", "| case | tool | " + " | ".join(f"Dice {r}" for r in REGIONS) + " | " + " | ".join(f"HD95 {r}" for r in REGIONS) + " | s |", "|" + "---|" * 9]
    for case in test_cases():
        for t in tools:
            by = {r["region"]: r for r in t["rows"] if r["case"] == case}
            if not by: continue
            seen = " (trained on it)" if case in t["training"].get("trained_on", ()) else ""
            lines.append(f"| {case}{' (extra)' if case == CASE_EXTRA else ''} | {t['name']}{seen} | " + " | ".join(f(float(by[r]["dice"])) for r in REGIONS)
                         + " | " + " | ".join(f(float(by[r]["hd95"]), 1) for r in REGIONS) + f" | {t['inference']['cases'][case]['seconds']} |")
    return "\n".join(lines)

def cmd_score(a):
    "Score nnU-Net's predictions and neuroseg's pretrained:brats on the same cases; comparison.json and comparison.md."
    tag = pred_tag(a)
    pred_dir, out = WORK/"predictions"/tag, Path(a.out or WORK/"score"/tag)
    timings = load_json(pred_dir/"timings.json")
    if not timings: sys.exit(f"{pred_dir}: no predictions; run `predict` first")
    for case in test_cases(): to_brats_labels(pred_dir/f"{case}.nii.gz", out/"nnunet"/group(case)/f"{case}.nii.gz", case)
    nn = tool_record(f"nnU-Net v2 {CONFIG} ({TRAINER}, fold {a.fold}{'' if timings['tta'] else ', no TTA'})",
                     evaluate(out/"nnunet", out/"nnunet"), timings["cases"], nnunet_training_facts(a.fold))
    from neuroseg.metrics import shipped_training_cases
    facts = NEUROSEG | dict(trained_on=shipped_training_cases().get("brats", []) if a.neuroseg_ckpt == "pretrained:brats" else [])
    ns_timings = neuroseg_predict(out/"neuroseg", a.neuroseg_ckpt)
    ns = tool_record(f"neuroseg {a.neuroseg_ckpt}", evaluate(out/"neuroseg", out/"neuroseg"), ns_timings, facts)
    raw_timings = neuroseg_predict(out/"neuroseg-raw", a.neuroseg_ckpt, "none")   # as nnU-Net predicts: no postprocessing
    raw = tool_record(f"neuroseg {a.neuroseg_ckpt}, --postprocess none", evaluate(out/"neuroseg-raw", out/"neuroseg-raw"), raw_timings, facts)
    tools = [ns, raw, nn]
    result = dict(when=time.strftime("%Y-%m-%d %H:%M"), budget_s=BUDGET_S, versions=load_json(WORK/"versions.json"),
                  plan=load_json(WORK/"plan.json"), timing=load_json(WORK/f"timing_{CONFIG}.json"), cases=test_cases(), tools=tools)
    save_json(out/"comparison.json", result)
    (out/"comparison.md").write_text(markdown(tools) + "\n")
    print(markdown(tools))
    log(f"-> {out/'comparison.json'}, {out/'comparison.md'}")


# ---------------------------------------------------------------- main
def main(argv=None):
    global CONFIG
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=CONFIG, help=f"nnU-Net configuration (default {CONFIG}, decided by `timing`)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup", help=cmd_setup.__doc__)
    sub.add_parser("convert", help=cmd_convert.__doc__)
    q = sub.add_parser("plan", help=cmd_plan.__doc__)
    q.add_argument("--np", default="1", help="preprocessing processes (default 1: 2 shared cores)")
    q.add_argument("--configs", nargs="+", default=["3d_fullres", "2d"], help="configurations to preprocess")
    q = sub.add_parser("timing", help=cmd_timing.__doc__)
    q.add_argument("--iterations", type=int, default=4, help="training iterations per epoch to fit")
    q.add_argument("--val-iterations", type=int, default=1, help="validation iterations per epoch to fit")
    q.add_argument("--final-val-s", type=float, default=0, help="seconds of the budget kept for nnU-Net's final validation "
                   "(default 0: it is evaluation, timed apart, as neuroseg's cross-validation was)")
    q.add_argument("--reuse", action="store_true", help="only re-read the last timing run's log")
    for name, fn in (("train", cmd_train), ("_worker", cmd_worker), ("status", cmd_status)):
        q = sub.add_parser(name, help=fn.__doc__)
        q.add_argument("--fold", default="0", help="0-4 or all (default 0)")
    for name, fn in (("predict", cmd_predict), ("score", cmd_score)):
        q = sub.add_parser(name, help=fn.__doc__)
        q.add_argument("--fold", default="0")
        q.add_argument("--checkpoint", default="checkpoint_final.pth", help="or checkpoint_latest.pth / checkpoint_best.pth")
        q.add_argument("--tag", help="predictions folder name (default from configuration, fold, checkpoint, TTA)")
        q.add_argument("--disable-tta", action="store_true", help="no mirroring (nnU-Net's default mirrors: 8x the time)")
        if name == "score":
            q.add_argument("--neuroseg-ckpt", default="pretrained:brats")
            q.add_argument("--out", help="default WORK/score/<tag>")
    a = p.parse_args(argv)
    CONFIG = a.config
    WORK.mkdir(parents=True, exist_ok=True)
    {"setup": cmd_setup, "convert": cmd_convert, "plan": cmd_plan, "timing": cmd_timing, "train": cmd_train,
     "_worker": cmd_worker, "status": cmd_status, "predict": cmd_predict, "score": cmd_score}[a.cmd](a)

if __name__ == "__main__":
    main()
