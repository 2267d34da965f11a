"""Fault-injection suite: hostile inputs and faults against the six console scripts.

Each row of `ROWS` is one hostile input or fault. A row passes when its command
- exits with the expected code (2: bad input),
- prints exactly one `error:` line on stderr, naming the offending file or option,
- prints no Python traceback,
- leaves nothing behind (no partial, temporary or empty output files or folders), and
- leaves its inputs byte-identical (every file of the row's folder is hashed before and after).
Rows with a second command (`then`) inject a fault inside the first (SIGKILL mid-write, SIGTERM mid-training) and
check that the rerun succeeds and removes the temporaries that the fault left.
A row marked `xfail="reason"` fails because of a known bug in a module this suite does not fix: it is reported and
not counted as a failure (an xfail row that passes is reported as XPASS, so the mark can be removed). Rows that need a
tmpfs mount (full disk, read-only folder) are skipped with a printed line where mounting is impossible (not root).

Speed: importing torch and MONAI takes 5-15 s per process on the 2-core CI machine, so by default the suite imports
the six console scripts once and runs each command in a fork of that process (the same entry point, arguments, exit
status and streams as the installed script; `--subprocess` runs the installed scripts instead). The tiny fixtures (a
32^3 ellipsoid dataset and a checkpoint of a 2-level U-Net trained for one step) are built once per run in a
temporary folder. Rows run two at a time, each in its own folder.

    python tools/fault_suite.py [--only SUBSTRING ...] [--workers 2] [--subprocess] [--keep] [-v]

Ends with `fault suite: N rows, P passed, X expected failures, S skipped, F failed`; exit status 1 when F > 0.
"""
from __future__ import annotations
import argparse, contextlib, dataclasses, functools, gzip, hashlib, io, json, os, re, shlex, shutil, signal, socket, subprocess
import importlib, sys, tempfile, threading, time, traceback
from pathlib import Path
from typing import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")      # two rows at a time on a shared 2-core machine
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("PYTHONWARNINGS", "ignore")
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCRIPTS = ("synth", "download", "train", "infer", "evaluate", "report", "plan", "cv")

# ---------------------------------------------------------------------------------------------------------- rows
_CASE_FILES = ("seg.nii.gz", "seg_probs.nii.gz", "seg_entropy.nii.gz", "seg_itksnap_labels.txt", "seg_ColorTable.ctbl")   # one case's unit
_ALL_OUTPUTS = "--ckpt ckpt.pt --input case.nii.gz --out pred/seg.nii.gz --save-probs --save-entropy"
@dataclasses.dataclass
class Row:
    "One hostile input or fault: the command, what prepares the row's folder, and what must come out."
    name: str                      # short id, unique
    script: str                    # synth, download, train, infer, evaluate, report, plan or cv
    args: str                      # command-line arguments (shlex), run in the row's folder; {url} = the test server
    names: tuple|str = ()          # what the one error line must contain (the offending file or option)
    setup: Callable|None = None    # setup(folder, fixtures): writes the row's inputs into its folder
    code: int = 2                  # expected exit status
    xfail: str = ""                # why it fails today (a bug in a module this suite does not fix)
    mount: str = ""                # "full" (256 KiB tmpfs) or "ro" (read-only tmpfs) mounted at <folder>/mnt
    hook: str = ""                 # fault injected inside the command (see HOOKS)
    then: str|None = None          # a second command (same script) run after the first, expected to exit 0
    keep: tuple = ()               # regexes of paths (relative to the row's folder) the commands may create
    must: tuple = ()               # paths (relative to the row's folder) that must exist at the end: the unit a rerun completed
    timeout: float = 150

def _w(path, data:bytes): Path(path).parent.mkdir(parents=True, exist_ok=True); Path(path).write_bytes(data)

def _nifti(path, data, affine=None):
    "Save `data` with `affine` (a singular one goes into the sform as it is: nibabel cannot decompose it into a qform)."
    import nibabel as nib, numpy as np
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    affine = np.eye(4) if affine is None else affine
    if abs(np.linalg.det(affine[:3, :3])) > 1e-9: return nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    header = nib.Nifti1Header(); header.set_data_shape(np.shape(data)); header.set_data_dtype(np.asarray(data).dtype)
    header.set_sform(affine, code=1); header["qform_code"] = 0
    nib.save(nib.Nifti1Image(np.asarray(data), None, header=header), str(path))

def _load(path):
    "A NIfTI file's array and affine."
    import nibabel as nib, numpy as np
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine

# what a row's folder starts with (fx: the fixtures)
def case(w, fx): shutil.copy(fx.case, w/"case.nii.gz")
def ckpt(w, fx): shutil.copy(fx.ckpt, w/"ckpt.pt")
def data(w, fx): shutil.copytree(fx.data, w/"data")
def infer_in(w, fx): case(w, fx); ckpt(w, fx)
def eval_in(w, fx):
    for side in ("pred", "ref"): shutil.copytree(fx.data/"labelsTr", w/side)
def tiny_cfg(w, fx): (w/"tiny.yaml").write_text(fx.config_text)
def train_in(w, fx): data(w, fx); tiny_cfg(w, fx)
def run_in(w, fx): train_in(w, fx); shutil.copytree(fx.run, w/"run")
def modalities(w, fx, change=None):
    "The 4D case split into four 3D modality files m0..m3; `change(i, array, affine)` may alter one."
    image, affine = _load(fx.case)
    for i in range(4):
        arr, aff = image[..., i], affine.copy()
        if change: arr, aff = change(i, arr, aff)
        _nifti(w/f"m{i}.nii.gz", arr, aff)
    ckpt(w, fx)
def with_(*steps):
    "A setup made of several setups and functions of the folder."
    def setup(w, fx):
        for s in steps: s(w, fx) if s.__code__.co_argcount == 2 else s(w)
    return setup

def bad_ckpt(make):
    "The case, and `make(folder)`'s bytes as bad.pt."
    return with_(case, lambda w: _w(w/"bad.pt", make(w)))
def _resave_float64(path):
    "The same image in another file: float64 voxels (a resume must notice that its data changed)."
    import nibabel as nib, numpy as np
    img = nib.load(path); nib.save(nib.Nifti1Image(np.asarray(img.dataobj, np.float64), img.affine), path)

def _half(path): b = Path(path).read_bytes(); return b[:len(b)//2]
def _random(n=4096, seed=0): import numpy as np; return np.random.default_rng(seed).bytes(n)
def _torch_bytes(obj):
    import torch
    buf = io.BytesIO(); torch.save(obj, buf); return buf.getvalue()
def _pickled_ckpt(w):
    return _torch_bytes({"model": {}, "config": {}, "where": Path("/etc/passwd")})   # a pickled pathlib object
def _ckpt_edit(w, change):
    "The bytes of the row's checkpoint after `change(checkpoint dict)`."
    import torch
    ck = torch.load(w/"ckpt.pt", weights_only=True); change(ck)
    return _torch_bytes(ck)
def _wrong_weights(w): return _ckpt_edit(w, lambda ck: ck["config"]["model"].update(channels=[8, 16]))
def _nan_weight(ck): next(iter(ck["model"].values())).view(-1)[0] = float("nan")
def _no_config(w):
    import torch
    return _torch_bytes({"model": {"w": torch.zeros(2)}})

def bad_case(change):
    "The 4D case rewritten by `change(array, affine) -> (array, affine)`, and the checkpoint."
    def setup(w, fx):
        image, affine = _load(fx.case)
        _nifti(w/"case.nii.gz", *change(image.astype("float32"), affine.copy()))
        ckpt(w, fx)
    return setup
def _nan(a, aff): a[3, 3, 3, 1] = float("nan"); return a, aff
def _voxels_of(mm):
    "The case with voxels of `mm` on every axis (resampled to the checkpoint's 1.5 mm, a 32^3 image grows by (mm / 1.5)^3)."
    def change(a, aff): import numpy as np; aff[:3, :3] = np.diag([mm] * 3); return a, aff
    return change
def _long_case(w, fx): data(w, fx); ckpt(w, fx); shutil.move(w/"data"/"imagesTr"/"BRATS_001.nii.gz", w/"data"/"imagesTr"/f"{'c' * 245}.nii.gz")
def _zero(a, aff): a[..., 2] = 0; return a, aff
def _three(a, aff): return a[..., :3], aff
def _3d(a, aff): return a[..., 0], aff
def _singular(a, aff): aff[:3, 2] = 0; return a, aff
def _gz_truncated(w, fx): infer_in(w, fx); b = (w/"case.nii.gz").read_bytes(); (w/"case.nii.gz").write_bytes(b[:len(b)//2])
def _gz_random(w, fx): infer_in(w, fx); (w/"case.nii.gz").write_bytes(gzip.compress(_random(2000)))
def _empty_case(w, fx): infer_in(w, fx); (w/"case.nii.gz").write_bytes(b"")

def _shift(i, a, aff):
    if i == 2: aff[0, 3] += 5.0
    return a, aff
def _crop(i, a, aff): return (a[:-2] if i == 3 else a), aff

def label_value(side, value):
    "One label file of `side` (a folder of the row) with a voxel set to `value`."
    def change(w):
        f = sorted((w/side).glob("*.nii.gz"))[0]
        arr, aff = _load(f); arr = arr.astype("float32" if isinstance(value, float) else "uint8"); arr[0, 0, 0] = value
        _nifti(f, arr, aff)
    return change
def _train_label(value):
    "The training data with one voxel of label file BRATS_002 set to `value`."
    def change(w):
        f = sorted((w/"data"/"labelsTr").glob("*.nii.gz"))[1]
        arr, aff = _load(f); arr = arr.copy(); arr[1, 1, 1] = value; _nifti(f, arr.astype("uint8"), aff)
    return with_(train_in, change)
def _train_image(change, every:bool=False):
    "The training data with image BRATS_002 (or every image: whichever case the split puts in training) rewritten by `change`."
    def setup(w, fx):
        train_in(w, fx)
        for f in sorted((w/"data"/"imagesTr").glob("*.nii.gz"))[slice(None) if every else slice(1, 2)]: _nifti(f, *change(*_load(f)))
    return setup
def _nan_voxel(a, aff): a = a.astype("float32"); a[3, 3, 3, 0] = float("nan"); return a, aff
def _zero_channel(a, aff): a = a.astype("float32"); a[..., 1] = 0; return a, aff

def _batch_dup(w, fx):
    data(w, fx)
    src = sorted((w/"data"/"imagesTr").glob("*.nii.gz"))[0]
    arr, aff = _load(src); _nifti(w/"data"/"imagesTr"/src.name.replace(".nii.gz", ".nii"), arr, aff)
    ckpt(w, fx)
def _eval_dup(w, fx):
    eval_in(w, fx)
    f = sorted((w/"pred").glob("*.nii.gz"))[0]
    shutil.copy(f, w/"pred"/f.name.replace(".nii.gz", "_seg.nii.gz"))
def _eval_crop(w, fx):
    eval_in(w, fx)
    f = sorted((w/"pred").glob("*.nii.gz"))[0]
    arr, aff = _load(f); _nifti(f, arr[:-2], aff)
def _eval_4d(w, fx):
    eval_in(w, fx)
    f = sorted((w/"pred").glob("*.nii.gz"))[0]
    arr, aff = _load(f); _nifti(f, arr[..., None], aff)
def _run_no_ckpt(w, fx):
    train_in(w, fx); shutil.copytree(fx.run, w/"run"); shutil.rmtree(w/"run"/"checkpoints"); (w/"run"/"checkpoints").mkdir()
    (w/"run"/"history.json").unlink(missing_ok=True)

def ab_eval(w, fx=None):
    "Two tiny cases A and B (uint8 8^3): pred/A.nii.gz, pred/B.nii.gz and ref/A_seg.nii.gz, ref/B_seg.nii.gz."
    import numpy as np
    seg = np.zeros((8, 8, 8), np.uint8); seg[2:5, 2:5, 2:5] = 1
    for c in ("A", "B"): _nifti(w/"pred"/f"{c}.nii.gz", seg); _nifti(w/"ref"/f"{c}_seg.nii.gz", seg)
def _split(**split): return lambda w: _w(w/"split.json", json.dumps(split).encode())
def _hard_link(w): os.link(w/"ref"/"A_seg.nii.gz", w/"A.nii.gz")
def _renamed_preds(w):
    for c in ("A", "B"): (w/"pred"/f"{c}.nii.gz").rename(w/"pred"/f"x{c}.nii.gz")
def _complex(path):
    "The NIfTI file at `path` rewritten with complex64 voxels."
    import numpy as np
    arr, aff = _load(path); _nifti(path, arr.astype(np.complex64), aff)
def _empty_dataset(w, fx):
    "empty/dataset.json: an MSD dataset (modality, labels) whose training list is empty."
    d = json.loads((fx.data/"dataset.json").read_text())
    _w(w/"empty"/"dataset.json", json.dumps(d | {"training": [], "numTraining": 0}).encode())


ROWS = [
    # --- checkpoints (neuroseg_infer --ckpt, neuroseg_train --resume / train.init_from)
    Row("ckpt-empty", "infer", "--ckpt bad.pt --input case.nii.gz --out seg.nii.gz", ("bad.pt", "empty"), bad_ckpt(lambda w: b"")),
    Row("ckpt-truncated", "infer", "--ckpt bad.pt --input case.nii.gz --out seg.nii.gz", ("bad.pt", "truncated"),
        with_(infer_in, lambda w: _w(w/"bad.pt", _half(w/"ckpt.pt")))),
    Row("ckpt-random-bytes", "infer", "--ckpt bad.pt --input case.nii.gz --out seg.nii.gz", ("bad.pt", "not a PyTorch checkpoint"),
        bad_ckpt(lambda w: _random())),
    Row("ckpt-pickled-object", "infer", "--ckpt bad.pt --input case.nii.gz --out seg.nii.gz", ("bad.pt", "pickled"),
        bad_ckpt(_pickled_ckpt)),
    Row("ckpt-no-config", "infer", "--ckpt bad.pt --input case.nii.gz --out seg.nii.gz", ("bad.pt", "config"), bad_ckpt(_no_config)),
    Row("ckpt-wrong-weights", "infer", "--ckpt bad.pt --input case.nii.gz --out seg.nii.gz", ("bad.pt", "do not fit"),
        with_(infer_in, lambda w: _w(w/"bad.pt", _wrong_weights(w)))),
    Row("ckpt-nan-weights", "infer", "--ckpt bad.pt --input case.nii.gz --out seg.nii.gz", ("bad.pt", "NaN"),
        with_(infer_in, lambda w: _w(w/"bad.pt", _ckpt_edit(w, _nan_weight)))),
    Row("ckpt-model-not-a-dict", "infer", "--ckpt bad.pt --input case.nii.gz --out seg.nii.gz", ("bad.pt", "model"),
        with_(infer_in, lambda w: _w(w/"bad.pt", _ckpt_edit(w, lambda ck: ck.update(model=[1.0, 2.0]))))),
    Row("ckpt-config-unknown-key", "infer", "--ckpt bad.pt --input case.nii.gz --out seg.nii.gz", ("bad.pt", "model.depth"),
        with_(infer_in, lambda w: _w(w/"bad.pt", _ckpt_edit(w, lambda ck: ck["config"]["model"].update(depth=9))))),
    Row("ckpt-missing", "infer", "--ckpt nothere.pt --input case.nii.gz --out seg.nii.gz", "nothere.pt", case),
    Row("ckpt-is-folder", "infer", "--ckpt sub --input case.nii.gz --out seg.nii.gz", "sub", with_(case, lambda w: (w/"sub").mkdir())),
    Row("train-resume-random-ckpt", "train", "--config tiny.yaml --resume bad.pt", ("bad.pt", "not a PyTorch checkpoint"),
        with_(train_in, lambda w: _w(w/"bad.pt", _random()))),
    Row("train-init-from-truncated", "train", "--config tiny.yaml train.init_from=bad.pt", ("bad.pt", "truncated"),
        with_(train_in, lambda w, fx: _w(w/"bad.pt", _half(fx.ckpt)))),
    # --- input images (neuroseg_infer)
    Row("nii-random-bytes", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz", "case.nii.gz", _gz_random),
    Row("nii-truncated", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz", "case.nii.gz", _gz_truncated),
    Row("nii-empty-file", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz", "case.nii.gz", _empty_case),
    Row("nii-not-nifti", "infer", "--ckpt ckpt.pt --input case.txt --out seg.nii.gz", "case.txt",
        with_(ckpt, lambda w: _w(w/"case.txt", b"hello\n"))),
    Row("nii-missing", "infer", "--ckpt ckpt.pt --input nothere.nii.gz --out seg.nii.gz", "nothere.nii.gz", ckpt),
    Row("nii-3d-for-4d", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz", ("case.nii.gz", "3D"), bad_case(_3d)),
    Row("nii-3-channels", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz", ("case.nii.gz", "3 channels"), bad_case(_three)),
    Row("nii-nan-voxel", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz", ("case.nii.gz", "NaN"), bad_case(_nan)),
    Row("nii-all-zero-channel", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz", ("case.nii.gz", "zero"), bad_case(_zero)),
    Row("nii-singular-affine", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz", ("case.nii.gz", "affine"), bad_case(_singular)),
    Row("modalities-misaligned", "infer", "--ckpt ckpt.pt --flair m0.nii.gz --t1 m1.nii.gz --t1gd m2.nii.gz --t2 m3.nii.gz --out seg.nii.gz",
        ("m2.nii.gz", "grid"), lambda w, fx: modalities(w, fx, _shift)),
    Row("modalities-shape-differs", "infer", "--ckpt ckpt.pt --flair m0.nii.gz --t1 m1.nii.gz --t1gd m2.nii.gz --t2 m3.nii.gz --out seg.nii.gz",
        ("m3.nii.gz", "grid"), lambda w, fx: modalities(w, fx, _crop)),
    Row("brats-case-missing-modality", "infer", "--ckpt ckpt.pt --input BraTS2021_00001 --out seg.nii.gz", ("BraTS2021_00001", "t2"),
        with_(ckpt, lambda w, fx: [_nifti(w/"BraTS2021_00001"/f"BraTS2021_00001_{m}.nii.gz", _load(fx.case)[0][..., i], _load(fx.case)[1])
                                   for i, m in enumerate(("flair", "t1", "t1ce"))])),
    Row("modalities-4d-as-flair", "infer", "--ckpt ckpt.pt --flair case.nii.gz --t1 m1.nii.gz --t1gd m2.nii.gz --t2 m3.nii.gz --out seg.nii.gz",
        ("case.nii.gz", "4D"), with_(lambda w, fx: modalities(w, fx), case)),
    # --- outputs that are inputs, clashing case ids, unusable output places (neuroseg_infer)
    Row("out-is-input-file", "infer", "--ckpt ckpt.pt --input case.nii.gz --out case.nii.gz --overwrite", ("case.nii.gz", "input"), infer_in),
    Row("out-is-input-symlink", "infer", "--ckpt ckpt.pt --input case.nii.gz --out link.nii.gz --overwrite", ("link.nii.gz", "input"),
        with_(infer_in, lambda w: (w/"link.nii.gz").symlink_to("case.nii.gz"))),
    Row("out-is-modality-file", "infer", "--ckpt ckpt.pt --flair m0.nii.gz --t1 m1.nii.gz --t1gd m2.nii.gz --t2 m3.nii.gz --out m1.nii.gz --overwrite",
        ("m1.nii.gz", "input"), lambda w, fx: modalities(w, fx)),
    Row("out-is-input-folder", "infer", "--ckpt ckpt.pt --input data/imagesTr --out data/imagesTr", ("data/imagesTr", "input folder"),
        with_(data, ckpt)),
    Row("out-inside-input-folder", "infer", "--ckpt ckpt.pt --input data/imagesTr --out data/imagesTr/pred", ("data/imagesTr/pred", "inside"),
        with_(data, ckpt)),
    Row("out-symlink-to-input-folder", "infer", "--ckpt ckpt.pt --input data/imagesTr --out linkdir", ("linkdir", "input folder"),
        with_(data, ckpt, lambda w: (w/"linkdir").symlink_to("data/imagesTr"))),
    Row("batch-two-inputs-one-case", "infer", "--ckpt ckpt.pt --input data/imagesTr --out pred", ("BRATS_001", "both"), _batch_dup),
    Row("out-parent-is-file", "infer", "--ckpt ckpt.pt --input case.nii.gz --out afile/seg.nii.gz", "afile",
        with_(infer_in, lambda w: _w(w/"afile", b"x"))),
    Row("out-read-only", "infer", "--ckpt ckpt.pt --input case.nii.gz --out mnt/seg.nii.gz", "mnt", infer_in, mount="ro"),
    Row("out-full-disk", "infer", "--ckpt ckpt.pt --input case.nii.gz --out mnt/seg.nii.gz --save-probs --save-entropy", "mnt",
        infer_in, mount="full"),
    Row("out-full-disk-batch", "infer", "--ckpt ckpt.pt --input data/imagesTr --out mnt/pred", "mnt", with_(data, ckpt), mount="full"),
    Row("out-exists", "infer", "--ckpt ckpt.pt --input case.nii.gz --out old.nii.gz", ("old.nii.gz", "exists"),
        with_(infer_in, lambda w: shutil.copy(w/"case.nii.gz", w/"old.nii.gz"))),
    Row("min-size-wt-negative", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --min-size-wt -5", "min", infer_in),
    Row("min-size-et-nan", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --min-size-et nan", "min", infer_in),
    Row("et-min-volume-negative", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --et-min-volume -1", "et_min_volume", infer_in),
    Row("overlap-out-of-range", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --overlap 1.5", "overlap", infer_in),
    Row("overlap-nan", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --overlap nan", "overlap", infer_in),
    Row("roi-zero", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --roi 0 0 0", "roi", infer_in),
    Row("sw-batch-size-zero", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --sw-batch-size 0", "sw_batch_size", infer_in),
    Row("ckpt-unknown-pretrained", "infer", "--ckpt pretrained:nosuchmodel --input case.nii.gz --out seg.nii.gz", "nosuchmodel", case),
    Row("device-unavailable", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --device cuda:7", "cuda", infer_in),
    Row("infer-split-unknown-case", "infer", "--ckpt ckpt.pt --input data/imagesTr --out pred --split split.json", "BRATS_999",
        with_(data, ckpt, lambda w: _w(w/"split.json", json.dumps(dict(test=["BRATS_999"], folds=[["BRATS_001"], ["BRATS_002"]])).encode()))),
    Row("batch-one-corrupt-case", "infer", "--ckpt ckpt.pt --input data/imagesTr --out pred", ("BRATS_002", "error"),
        with_(data, ckpt, lambda w: _w(w/"data"/"imagesTr"/"BRATS_002.nii.gz", gzip.compress(_random(3000)))),
        code=1, keep=(r"pred", r"pred/BRATS_00[134](\.nii\.gz|_itksnap_labels\.txt|_ColorTable\.ctbl)")),
    Row("out-is-folder", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --overwrite", ("seg.nii.gz", "folder"),
        with_(infer_in, lambda w: (w/"seg.nii.gz").mkdir())),
    Row("probs-output-is-input", "infer", "--ckpt ckpt.pt --input seg_probs.nii.gz --out seg.nii.gz --save-probs --overwrite",
        ("seg_probs.nii.gz", "input"), with_(ckpt, lambda w, fx: shutil.copy(fx.case, w/"seg_probs.nii.gz"))),
    Row("infer-split-corrupt", "infer", "--ckpt ckpt.pt --input data/imagesTr --out pred --split split.json", "split.json",
        with_(data, ckpt, lambda w: _w(w/"split.json", b"{not json"))),
    Row("infer-killed-mid-write", "infer", "--ckpt ckpt.pt --input case.nii.gz --out pred/seg.nii.gz --save-probs", (), infer_in,
        code=-9, hook="kill_after_first_nifti", then="--ckpt ckpt.pt --input case.nii.gz --out pred/seg.nii.gz --save-probs",
        keep=(r"pred", r"pred/seg(_probs\.nii\.gz|\.nii\.gz|_itksnap_labels\.txt|_ColorTable\.ctbl)")),
    Row("infer-interrupted", "infer", "--ckpt ckpt.pt --input case.nii.gz --out pred/seg.nii.gz", "interrupted", infer_in,
        code=130, hook="sigint_in_network"),
    Row("infer-sigterm", "infer", "--ckpt ckpt.pt --input case.nii.gz --out pred/seg.nii.gz", "stopped by SIGTERM", infer_in,
        code=128 + signal.SIGTERM, hook="sigterm_in_network"),
    Row("infer-batch-sigterm-mid-write", "infer", "--ckpt ckpt.pt --input data/imagesTr --out pred", "stopped by SIGTERM",
        with_(data, ckpt), code=128 + signal.SIGTERM, hook="sigterm_after_second_nifti",
        keep=(r"pred", r"pred/BRATS_001(\.nii\.gz|_itksnap_labels\.txt|_ColorTable\.ctbl)")),
    Row("infer-batch-out-locked", "infer", "--ckpt ckpt.pt --input data/imagesTr --out pred", ("pred", "is writing there"),
        with_(data, ckpt), hook="hold_pred_lock", keep=(r"\.pred\.lock",)),
    # --- neuroseg_evaluate
    Row("eval-ref-label-outside-convention", "evaluate", "--pred pred --ref ref --convention msd --out ev", ("ref/BRATS_001", "7"),
        with_(eval_in, label_value("ref", 7))),
    Row("eval-pred-label-outside-convention", "evaluate", "--pred pred --ref ref --convention brats2021 --out ev", ("pred/BRATS_001", "3"),
        with_(eval_in, label_value("pred", 3))),
    Row("eval-non-integer-labels", "evaluate", "--pred pred --ref ref --convention msd --out ev", ("pred/BRATS_001", "integer"),
        with_(eval_in, label_value("pred", 0.5))),
    Row("eval-nan-label", "evaluate", "--pred pred --ref ref --convention msd --out ev", "pred/BRATS_001",
        with_(eval_in, label_value("pred", float("nan")))),
    Row("eval-grid-mismatch", "evaluate", "--pred pred --ref ref --convention msd --out ev", ("pred/BRATS_001", "grid"), _eval_crop),
    Row("eval-4d-label-map", "evaluate", "--pred pred --ref ref --convention msd --out ev", ("pred/BRATS_001", "3D"), _eval_4d),
    Row("eval-corrupt-pred", "evaluate", "--pred pred --ref ref --convention msd --out ev", "pred/BRATS_002",
        with_(eval_in, lambda w: _w(w/"pred"/"BRATS_002.nii.gz", _random()))),
    Row("eval-two-files-one-case", "evaluate", "--pred pred --ref ref --convention msd --out ev", ("BRATS_001", "two files"), _eval_dup),
    Row("eval-out-is-file", "evaluate", "--pred pred --ref ref --convention msd --out ev", "ev",
        with_(eval_in, lambda w: _w(w/"ev", b"x"))),
    Row("eval-out-is-pred-file", "evaluate", "--pred pred/BRATS_001.nii.gz --ref ref/BRATS_001.nii.gz --convention msd --out pred/BRATS_001.nii.gz",
        "pred/BRATS_001.nii.gz", eval_in),
    Row("eval-out-is-ref-folder", "evaluate", "--pred pred --ref ref --convention msd --out ref", ("ref", "input"), eval_in),
    Row("eval-out-parent-is-file", "evaluate", "--pred pred --ref ref --convention msd --out afile/ev", "afile",
        with_(eval_in, lambda w: _w(w/"afile", b"x"))),
    Row("eval-out-read-only", "evaluate", "--pred pred --ref ref --convention msd --out mnt/ev", "mnt", eval_in, mount="ro"),
    Row("eval-out-full-disk", "evaluate", "--pred pred --ref ref --convention msd --out mnt/ev", "mnt", eval_in, mount="full"),
    Row("eval-convention-undecidable", "evaluate", "--pred pred --ref ref --out ev", "--convention",
        with_(eval_in, lambda w: [_nifti(f, (_load(f)[0] == 1).astype("uint8"), _load(f)[1]) for s in ("pred", "ref")
                                   for f in sorted((w/s).glob("*.nii.gz"))])),
    Row("eval-empty-label-file", "evaluate", "--pred pred --ref ref --convention msd --out ev", "ref/BRATS_003",
        with_(eval_in, lambda w: _w(w/"ref"/"BRATS_003.nii.gz", b""))),
    Row("eval-split-corrupt", "evaluate", "--pred pred --ref ref --convention msd --out ev --split split.json", "split.json",
        with_(eval_in, lambda w: _w(w/"split.json", b'{"test": 3}'))),
    Row("eval-interrupted", "evaluate", "--pred pred --ref ref --convention msd --out ev", "interrupted", eval_in,
        code=130, hook="sigint_in_evaluate_case"),
    Row("eval-missing-ref", "evaluate", "--pred pred --ref nothere --convention msd --out ev", "nothere", eval_in),
    Row("eval-killed-mid-write", "evaluate", "--pred pred --ref ref --convention msd --out ev", (),
        with_(eval_in, lambda w: (w/"ev").mkdir()), code=-9, hook="kill_after_first_text",
        then="--pred pred --ref ref --convention msd --out ev", keep=(r"ev/(metrics\.csv|summary\.json)",)),
    # --- neuroseg_train: data, config, run folders
    Row("train-label-outside-convention", "train", "--config tiny.yaml", ("BRATS_002", "7"), _train_label(7)),
    Row("train-3d-image", "train", "--config tiny.yaml", "BRATS_002", _train_image(lambda a, aff: (a[..., 0], aff))),
    Row("train-image-label-grids-differ", "train", "--config tiny.yaml", "BRATS_002", _train_image(lambda a, aff: (a[:-2], aff))),
    Row("train-two-entries-one-case", "train", "--config tiny.yaml", ("dataset.json", "BRATS_001"),
        with_(train_in, lambda w: (lambda p, d: p.write_text(json.dumps(d | {"training": d["training"] + d["training"][:1]})))(
            w/"data"/"dataset.json", json.loads((w/"data"/"dataset.json").read_text())))),
    Row("train-nan-image", "train", "--config tiny.yaml", ("BRATS_00", "NaN"), _train_image(_nan_voxel, every=True)),
    Row("train-all-zero-channel", "train", "--config tiny.yaml", ("BRATS_00", "zero"), _train_image(_zero_channel, every=True)),
    Row("train-empty-label-file", "train", "--config tiny.yaml", "BRATS_003",
        with_(train_in, lambda w: _w(sorted((w/"data"/"labelsTr").glob("*.nii.gz"))[2], b""))),
    Row("config-roi-not-divisible", "train", "--config tiny.yaml data.roi_size=[33,33,33]", "roi_size", train_in),
    Row("config-unknown-key", "train", "--config tiny.yaml train.epoch=3", "train.epoch", train_in),
    Row("config-bad-type", "train", "--config tiny.yaml train.lr=fast", "train.lr", train_in),
    Row("config-negative-epochs", "train", "--config tiny.yaml train.epochs=-1", "train.epochs", train_in),
    Row("config-nan-lr", "train", "--config tiny.yaml train.lr=nan", "train.lr", train_in),
    Row("config-override-no-equals", "train", "--config tiny.yaml train.epochs", "train.epochs", train_in),
    Row("config-bad-yaml", "train", "--config bad.yaml", "bad.yaml", with_(train_in, lambda w: _w(w/"bad.yaml", b"data: [1, 2\n  x: {"))),
    Row("config-yaml-not-a-mapping", "train", "--config list.yaml", "list.yaml", with_(train_in, lambda w: _w(w/"list.yaml", b"- 1\n- 2\n"))),
    Row("config-missing", "train", "--config nothere.yaml", "nothere.yaml", train_in),
    Row("train-existing-run", "train", "--config tiny.yaml", ("run", "--existing"), run_in),
    Row("train-existing-bad-choice", "train", "--config tiny.yaml --existing keep", "--existing", run_in),
    Row("train-resume-corrupt-last", "train", "--config tiny.yaml train.epochs=2 --resume last", ("last.pt", "last-1.pt"),
        with_(run_in, lambda w: shutil.copy(w/"run"/"checkpoints"/"last.pt", w/"run"/"checkpoints"/"last-1.pt"),
              lambda w: _w(w/"run"/"checkpoints"/"last.pt", _random())), code=0, keep=(r"run(/.*)?",)),
    Row("train-resume-both-corrupt", "train", "--config tiny.yaml --resume last", ("last.pt", "last-1.pt", "no usable"),
        with_(run_in, lambda w: _w(w/"run"/"checkpoints"/"last.pt", b""), lambda w: _w(w/"run"/"checkpoints"/"last-1.pt", _random()))),
    Row("train-resume-other-network", "train", "--config tiny.yaml model.channels=[8,16] --resume run", ("model.channels",), run_in),
    Row("train-first-run-into-dataset", "train", "--config tiny.yaml train.out_dir=data", ("data", "not a run folder"), train_in),
    Row("train-first-run-into-cwd", "train", "--config tiny.yaml train.out_dir=.", (".", "not a run folder"), train_in),
    Row("train-resume-other-data", "train", "--config tiny.yaml train.epochs=2 --resume last", ("run", "other data", "--other-data"),
        with_(run_in, lambda w: _resave_float64(next(iter(sorted((w/"data"/"imagesTr").glob("*.nii.gz"))))))),
    Row("train-run-folder-locked", "train", "--config tiny.yaml train.epochs=2 --resume last", ("run", "is writing there"),
        run_in, hook="hold_run_lock", keep=(r"\.run\.lock",)),
    Row("train-resume-no-checkpoints", "train", "--config tiny.yaml --resume run", "run", _run_no_ckpt),
    Row("train-resume-last-nothing", "train", "--config tiny.yaml --resume last", "run", train_in),
    Row("train-out-parent-is-file", "train", "--config tiny.yaml train.out_dir=afile/run", "afile",
        with_(train_in, lambda w: _w(w/"afile", b"x"))),
    Row("train-out-read-only", "train", "--config tiny.yaml train.out_dir=mnt/run", "mnt", train_in, mount="ro"),
    Row("train-out-full-disk", "train", "--config tiny.yaml train.out_dir=mnt/run", "mnt", train_in, mount="full"),
    Row("train-data-root-missing", "train", "--config tiny.yaml data.root=nothere data.format=brats", "nothere", tiny_cfg),
    Row("train-killed-mid-checkpoint", "train", "--config tiny.yaml", (), train_in, code=-9, hook="kill_after_first_checkpoint",
        then="--config tiny.yaml --existing replace", keep=(r"run(/.*)?",)),
    Row("train-killed-then-rerun", "train", "--config tiny.yaml", (), train_in, code=-9, hook="kill_after_first_checkpoint",
        then="--config tiny.yaml", keep=(r"run(/.*)?",)),
    Row("train-killed-mid-resume-save", "train", "--config tiny.yaml train.epochs=2", (), train_in, code=-9,
        hook="kill_at_third_checkpoint", then="--config tiny.yaml train.epochs=2 --resume last", keep=(r"run(/.*)?",)),
    Row("train-interrupted-then-resumed", "train", "--config tiny.yaml train.epochs=2", (), train_in, code=128 + signal.SIGTERM,
        hook="sigterm_at_step_1", then="--config tiny.yaml train.epochs=2 --resume last", keep=(r"run(/.*)?",)),
    Row("train-ctrl-c-then-resumed", "train", "--config tiny.yaml train.epochs=2", "stopped by SIGINT", train_in,
        code=128 + signal.SIGINT, hook="sigint_at_step_1", then="--config tiny.yaml train.epochs=2 --resume last", keep=(r"run(/.*)?",)),
    # --- neuroseg_synth
    Row("synth-out-is-file", "synth", "--out afile --kind ellipsoid --n 2 --shape 32 32 32", "afile", lambda w, fx: _w(w/"afile", b"x")),
    Row("synth-out-parent-is-file", "synth", "--out afile/ds --kind ellipsoid --n 2 --shape 32 32 32", "afile",
        lambda w, fx: _w(w/"afile", b"x")),
    Row("synth-out-not-empty", "synth", "--out ds --kind ellipsoid --n 2 --shape 32 32 32", ("ds", "overwrite"),
        lambda w, fx: _w(w/"ds"/"notes.txt", b"mine")),
    Row("synth-out-read-only", "synth", "--out mnt/ds --kind ellipsoid --n 2 --shape 32 32 32", "mnt", mount="ro"),
    Row("synth-out-full-disk", "synth", "--out mnt/ds --kind ellipsoid --n 2 --shape 32 32 32", "mnt", mount="full"),
    Row("synth-negative-shape", "synth", "--out ds --kind ellipsoid --n 2 --shape -5 32 32", "shape"),
    Row("synth-tiny-shape", "synth", "--out ds --kind ellipsoid --n 2 --shape 4 4 4", "shape"),
    Row("synth-interrupted", "synth", "--out ds --kind ellipsoid --n 2 --shape 32 32 32", "interrupted", hook="sigint_after_first_nifti",
        code=130),
    Row("synth-zero-cases", "synth", "--out ds --kind ellipsoid --n 0 --shape 32 32 32", "n=0"),
    Row("synth-preview-parent-is-file", "synth", "--out ds --kind ellipsoid --n 2 --shape 32 32 32 --preview afile/p.png", "afile",
        lambda w, fx: _w(w/"afile", b"x")),
    # --- neuroseg_download (a local HTTP server on 127.0.0.1 serves the archives)
    Row("download-root-is-file", "download", "--root afile --url {url}/good.tar --quiet", "afile", lambda w, fx: _w(w/"afile", b"x")),
    Row("download-corrupt-archive", "download", "--root dl --url {url}/corrupt.tar --md5 {md5_corrupt} --quiet", "Task01_BrainTumour.tar"),
    Row("download-md5-mismatch", "download", "--root dl --url {url}/good.tar --md5 00000000000000000000000000000000 --quiet", "md5"),
    Row("download-archive-without-dataset", "download", "--root dl --url {url}/nojson.tar --md5 {md5_nojson} --quiet", "dataset.json"),
    Row("download-http-404", "download", "--root dl --url {url}/missing.tar --quiet", "404"),
    Row("download-unreachable", "download", "--root dl --url http://127.0.0.1:9/x.tar --quiet", "127.0.0.1:9"),
    Row("download-bad-url", "download", "--root dl --url notaurl --quiet", "notaurl"),
    Row("download-interrupted", "download", "--root dl --url {url}/big.tar --md5 {md5_big} --quiet", ("interrupted", "Task01_BrainTumour.tar.part"),
        code=130, hook="sigint_after_first_write", keep=(r"dl", r"dl/Task01_BrainTumour\.tar\.part")),
    Row("download-root-read-only", "download", "--root mnt/dl --url {url}/good.tar --md5 {md5_good} --quiet", "mnt", mount="ro"),
    Row("download-root-full-disk", "download", "--root mnt/dl --url {url}/big.tar --md5 {md5_big} --quiet", "mnt", mount="full"),
    # --- neuroseg_report (fails before the kernel starts; no report folder)
    Row("report-unknown-parameter", "report", "train --config tiny.yaml -p no_such_param 1 --name r", "no_such_param", run_in),
    Row("report-run-dir-missing", "report", "train --config tiny.yaml -p run_dir nothere --name r", "nothere", run_in),
    Row("report-bad-override", "report", "train --config tiny.yaml train.epoch=3 --name r", "train.epoch", run_in),
    Row("report-missing-config", "report", "train --config nothere.yaml --name r", "nothere.yaml", run_in),
    Row("report-unknown-report", "report", "summary --config tiny.yaml --name r", "summary", run_in),
    Row("report-out-parent-is-file", "report", "train --config tiny.yaml --out afile/reports --name r", "afile",
        with_(run_in, lambda w: _w(w/"afile", b"x"))),
    # --- #24 fixes (another engineer's): empty or unknown split subsets, inputs that are one another, names too long, complex voxels
    Row("eval-split-test-empty", "evaluate", "--pred pred --ref ref --convention msd --split split.json --out ev",
        ("split.json", "its test subset is empty"), with_(ab_eval, _split(test=[], folds=[["A"], ["B"]]))),
    Row("eval-split-case-in-neither", "evaluate", "--pred pred --ref ref --convention msd --split split.json --out ev",
        ("Z", "in neither --pred"), with_(ab_eval, _split(test=["A", "Z"], folds=[["B"]]))),
    Row("eval-pred-link-to-ref", "evaluate", "--pred link --ref ref --convention msd --out ev", "the same folder",
        with_(ab_eval, lambda w: (w/"link").symlink_to("ref"))),
    Row("eval-pred-hard-link-to-ref", "evaluate", "--pred A.nii.gz --ref ref/A_seg.nii.gz --convention msd --out ev", "the same file",
        with_(ab_eval, _hard_link)),
    Row("eval-no-case-in-common", "evaluate", "--pred pred --ref ref --convention msd --out ev", "no case id in common",
        with_(ab_eval, _renamed_preds)),
    Row("eval-out-name-300-bytes", "evaluate", "--pred pred --ref ref --convention msd --out " + "r" * 300, ("a name of 300 bytes", "--out"),
        ab_eval),
    Row("eval-complex-prediction", "evaluate", "--pred pred --ref ref --convention msd --out ev", "complex64",
        with_(ab_eval, lambda w: _complex(w/"pred"/"A.nii.gz"))),
    Row("nii-complex-voxels", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz", "complex64",
        with_(infer_in, lambda w: _complex(w/"case.nii.gz"))),
    Row("train-out-name-300-bytes", "train", "--config tiny.yaml train.out_dir=" + "r" * 300, ("a name of 300 bytes", "train.out_dir"), train_in),
    Row("plan-no-case", "plan", "--data empty --out plan", "the dataset lists no case", _empty_dataset),
    *[Row(f"plan-gpu-memory-{v}", "plan", f"--data data --out plan --gpu_memory {v}", "above 0", data) for v in ("nan", "inf", "0", "-1")],
    *[Row(f"report-name-{n}", "report", f"train --config tiny.yaml -p run_dir run --name {v}", "one folder name under --out", run_in)
      for n, v in (("escapes", "../../x"), ("nested", "a/b"))],
    Row("cv-fold-out-of-range", "cv", "--config tiny.yaml --folds 9 train.out_dir=cv", "the split has folds 0..", train_in),
    Row("cv-fold-not-a-number", "cv", "--config tiny.yaml --folds one", "a fold number", train_in),
    # --- #24 item 8/9 in neuroseg_infer: unbounded postprocessing values, a self-referencing ensemble, a name with a newline,
    #     --out the dataset's own label folder
    Row("min-size-tc-inf", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --min-size-tc inf", ("min_size_ml of TC", "inf"), infer_in),
    Row("et-min-volume-1e308", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --et-min-volume 1e308", ("et_min_volume_ml", "1e+308"),
        infer_in),
    Row("postprocess-file-infinity", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --postprocess dec.json", ("dec.json", "inf"),
        with_(infer_in, lambda w: _w(w/"dec.json", b'{"postprocess": {"min_size_ml": [0, Infinity, 0], "et_min_volume_ml": 0}}'))),
    Row("ensemble-names-itself", "infer", "--ckpt self.json --input case.nii.gz --out seg.nii.gz", ("self.json", "ensemble file"),
        with_(infer_in, lambda w: _w(w/"self.json", json.dumps(dict(members=["ckpt.pt", "self.json"])).encode()))),
    Row("batch-case-name-newline", "infer", "--ckpt ckpt.pt --input data/imagesTr --out pred", ("data/imagesTr", "line break"),
        with_(data, ckpt, lambda w: shutil.copy(w/"data"/"imagesTr"/"BRATS_001.nii.gz", w/"data"/"imagesTr"/"BRATS\n005.nii.gz"))),
    Row("eval-name-newline", "evaluate", "--pred pred --ref ref --out ev", ("pred", "line break"),
        with_(eval_in, lambda w: shutil.copy(w/"pred"/"BRATS_001.nii.gz", w/"pred"/"BRATS\n005.nii.gz"))),
    Row("out-is-dataset-labels", "infer", "--ckpt ckpt.pt --input data/imagesTr --out data/labelsTr", ("data/labelsTr", "reference labels"),
        with_(data, ckpt)),
    # sizes and names no machine or file system takes: refused before any work
    Row("infer-voxels-1e4-mm", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz", ("case.nii.gz", "memory"), bad_case(_voxels_of(1e4))),
    Row("infer-voxels-300-mm", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz", ("case.nii.gz", "memory"), bad_case(_voxels_of(300.0))),
    Row("infer-roi-4096", "infer", "--ckpt ckpt.pt --input case.nii.gz --out seg.nii.gz --roi 4096 4096 4096", ("--roi", "memory"), infer_in),
    Row("infer-out-name-too-long", "infer", f"--ckpt ckpt.pt --input case.nii.gz --out {'o' * 300}.nii.gz", ("--out", "over the 255"), infer_in),
    Row("infer-out-table-name-too-long", "infer", f"--ckpt ckpt.pt --input case.nii.gz --out {'o' * 222}.nii.gz", ("--out", "_itksnap_labels.txt", "temporary"),
        infer_in),
    Row("infer-batch-case-name-too-long", "infer", "--ckpt ckpt.pt --input data/imagesTr --out pred", ("c" * 20, "shorter"), _long_case, code=1,
        keep=(r"pred", r"pred/BRATS_00[234](\.nii\.gz|_itksnap_labels\.txt|_ColorTable\.ctbl)")),
    # a SIGKILL at each step of a case's publication (write_all: its journal, then one rename per output, the label map
    # last), then the same command: the case is whole, without --overwrite
    *(Row(f"infer-killed-at-rename-{n}", "infer", _ALL_OUTPUTS, (), infer_in, code=-9, hook=f"kill_at_rename_{n}", then=_ALL_OUTPUTS,
          keep=(r"pred", *(rf"pred/{re.escape(f)}" for f in _CASE_FILES)), must=tuple(f"pred/{f}" for f in _CASE_FILES))
      for n in range(1, len(_CASE_FILES) + 2)),
    *(Row(f"infer-batch-killed-at-rename-{n}", "infer", "--ckpt ckpt.pt --input data/imagesTr --out pred", (), with_(data, ckpt), code=-9,
          hook=f"kill_at_rename_{n}", then="--ckpt ckpt.pt --input data/imagesTr --out pred",
          keep=(r"pred", r"pred/BRATS_00[1-4](\.nii\.gz|_itksnap_labels\.txt|_ColorTable\.ctbl)"),
          must=tuple(f"pred/BRATS_00{i}{x}" for i in range(1, 5) for x in (".nii.gz", "_itksnap_labels.txt", "_ColorTable.ctbl")))
      for n in (2, 4, 6)),   # inside the first case's publication, at its label map, inside the second's
]

# ---------------------------------------------------------------------------------------- faults inside a command
def _kill_after(module, name, when=lambda *a, **k: True):
    "Replace `module.name` by a call that completes, then SIGKILLs this process (a job killed mid-write)."
    original = getattr(module, name)
    def killing(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(*args, **kwargs): os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(module, name, killing)

def _hook_kill_after_first_nifti():
    import nibabel
    _kill_after(nibabel, "save")

def _kill_at_rename(n:int):
    "SIGKILL right after this process's n-th `os.replace` (a write_all: 1 its journal, then a rename per file, the label map last)."
    calls = []
    _kill_after(os, "replace", lambda *a, **k: calls.append(1) or len(calls) == n)

def _hook_kill_after_first_text():
    import pathlib
    _kill_after(pathlib.Path, "write_text", lambda self, *a, **k: ".tmp" in self.name)

def _hook_kill_after_first_checkpoint():
    import neuroseg.checkpoint
    _kill_after(neuroseg.checkpoint, "_torch_save")

def _hook_kill_at_third_checkpoint():
    "Epoch 1 writes last.pt and best.pt; the kill comes in epoch 2's last.pt."
    import neuroseg.checkpoint
    calls = []
    _kill_after(neuroseg.checkpoint, "_torch_save", lambda *a, **k: calls.append(1) or len(calls) == 3)

def _hook_sigint_in_network():
    import neuroseg.infer
    original = neuroseg.infer.network_probs
    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C while the network runs
        time.sleep(1)
        return original(*args, **kwargs)
    neuroseg.infer.network_probs = interrupted

def _sigint_after(module, name):
    "Replace `module.name` by a call that completes, then gets Ctrl-C (SIGINT)."
    original = getattr(module, name)
    def interrupted(*args, **kwargs):
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT); time.sleep(1)
        return result
    setattr(module, name, interrupted)

def _hook_sigint_after_first_write():
    import neuroseg.download
    _sigint_after(neuroseg.download, "_write_all")

def _hook_sigint_in_evaluate_case():
    import neuroseg.metrics
    _sigint_after(neuroseg.metrics, "evaluate_case")

def _hold_lock(folder:str, command:str):
    "Another process holds the lock of ./`folder` (`command` writing there) for as long as this command lives."
    parent, path = os.getpid(), os.path.abspath(folder)
    code = (f"import os, time\nfrom neuroseg.core import folder_lock\nwith folder_lock({path!r}, {command!r}):\n"
            f"    print('held', flush=True)\n    while os.getppid() == {parent}: time.sleep(0.1)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()   # the lock is held from here on

def _hook_hold_run_lock(): _hold_lock("run", "neuroseg_train")   # a training writing into ./run
def _hook_hold_pred_lock(): _hold_lock("pred", "neuroseg_infer")   # a batch writing into ./pred

def _hook_sigterm_in_network():
    "SIGTERM (a scheduler's stop, `kill`) while the network runs."
    import neuroseg.infer
    original = neuroseg.infer.network_probs
    def stopped(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM); time.sleep(1)
        return original(*args, **kwargs)
    neuroseg.infer.network_probs = stopped

def _hook_sigterm_after_second_nifti():
    "SIGTERM once a batch's second label map lies in its temporary (the first case is written)."
    import nibabel
    original, saves = nibabel.save, []
    def stopped(*args, **kwargs):
        result = original(*args, **kwargs); saves.append(1)
        if len(saves) == 2: os.kill(os.getpid(), signal.SIGTERM); time.sleep(1)
        return result
    nibabel.save = stopped

def _signal_after_step(n:int, signum:int):
    "The training sends itself `signum` right after optimiser step `n` (a wrapper of `train_step`: the library has no test hook)."
    import neuroseg.train
    original = neuroseg.train.train_step
    def stepping(run, ts, batch):
        loss = original(run, ts, batch)
        if ts.step == n: os.kill(os.getpid(), signum)
        return loss
    neuroseg.train.train_step = stepping

def _hook_sigterm_at_step_1(): _signal_after_step(1, signal.SIGTERM)
def _hook_sigint_at_step_1(): _signal_after_step(1, signal.SIGINT)

def _hook_sigint_after_first_nifti():
    import nibabel
    _sigint_after(nibabel, "save")

PRELOADED: set = set()   # the modules of the warm process that forks the commands

HOOKS = {name[len("_hook_"):]: f for name, f in globals().items() if name.startswith("_hook_")}
HOOKS.update({f"kill_at_rename_{n}": functools.partial(_kill_at_rename, n) for n in range(1, 8)})

# ------------------------------------------------------------------------------------------- running a command
def _entry(script:str):
    "The console script's function, as the installed `neuroseg_<script>` calls it."
    from importlib.metadata import entry_points
    return next(e for e in entry_points(group="console_scripts") if e.name == f"neuroseg_{script}").load()

def preload(modules:list=()):
    "Import every console script (and `modules`) once, so that forks start warm; returns the modules imported so far."
    for s in SCRIPTS: _entry(s)
    import torch.distributed, torch._dynamo, torch.nn.parallel   # what a training run imports lazily (3 s per run)
    for name in modules:
        with contextlib.suppress(Exception): importlib.import_module(name)
    return set(sys.modules)

def _report_modules(preloaded:set):
    "Write the modules this command imported beyond `preloaded` where $NEUROSEG_FAULTS_MODULES says (fixtures only)."
    if (path := os.environ.get("NEUROSEG_FAULTS_MODULES")):
        Path(path).write_text("\n".join(sorted(set(sys.modules) - preloaded)))

def _exec(script:str, hook:str, args:list) -> int:
    "Run a console script in this process as the interpreter would: its exit status; an uncaught error prints its traceback."
    sys.argv = [f"neuroseg_{script}", *args]
    # A shell without job control (`cmd &` in a script, nohup) starts its children with SIGINT ignored; the hooks play a
    # user's Ctrl-C at a terminal, so the command gets the handler an interactive start gives it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if hook: HOOKS[hook]()
    try: code = _entry(script)()
    except SystemExit as e: code = e.code
    except KeyboardInterrupt:
        traceback.print_exc(); sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL); os.kill(os.getpid(), signal.SIGINT)   # what python does
        code = 130
    except BaseException: traceback.print_exc(); code = 1
    if code is None: code = 0
    elif not isinstance(code, int): print(code, file=sys.stderr); code = 1
    _report_modules(PRELOADED)
    return code

@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str

def run_cli(script:str, args:list, cwd:Path, logs:Path, hook:str="", timeout:float=150, subprocess_mode:bool=False) -> Result:
    "Run `neuroseg_<script> args` in `cwd` (a fork of this warm process, or the installed script); stdout/stderr kept in `logs`."
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs/"stdout", logs/"stderr"
    if subprocess_mode:
        cmd = [str(BIN/f"neuroseg_{script}"), *args] if not hook else [sys.executable, __file__, "--exec", script, hook, *args]
        with open(out_path, "wb") as o, open(err_path, "wb") as e:
            p = subprocess.Popen(cmd, cwd=cwd, stdout=o, stderr=e, stdin=subprocess.DEVNULL, start_new_session=True)
            try: code = p.wait(timeout)
            except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); code = p.wait(); print(f"timeout after {timeout} s", file=e)
        with contextlib.suppress(ProcessLookupError): os.killpg(p.pid, signal.SIGKILL)   # what it left running (a kernel)
    else:
        sys.stdout.flush(); sys.stderr.flush()
        pid = os.fork()
        if pid == 0:   # the command
            code = 70
            try:
                os.setpgid(0, 0)
                os.chdir(cwd)
                for fd, path in ((1, out_path), (2, err_path)):
                    os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                code = _exec(script, hook, args)
            except BaseException: traceback.print_exc()
            finally:
                with contextlib.suppress(BaseException): sys.stdout.flush(); sys.stderr.flush()
                os._exit(code & 0xFF)
        deadline, status = time.time() + timeout, None
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done: status = st
            elif time.time() > deadline:
                os.killpg(pid, signal.SIGKILL); _, status = os.waitpid(pid, 0)
                with open(err_path, "a") as e: print(f"timeout after {timeout} s", file=e)
            else: time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError): os.killpg(pid, signal.SIGKILL)
        code = os.waitstatus_to_exitcode(status)
    return Result(code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))

# ------------------------------------------------------------------------------------------------------ checks
def snapshot(folder:Path) -> dict:
    "Relative path -> ('d',), ('l', target) or ('f', sha256) for everything under `folder`."
    found = {}
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(dirpath)/name
            rel = str(p.relative_to(folder))
            if p.is_symlink(): found[rel] = ("l", os.readlink(p))
            elif p.is_dir(): found[rel] = ("d",)
            else: found[rel] = ("f", hashlib.sha256(p.read_bytes()).hexdigest())
    return found

_TEMP = re.compile(r"(^|/)\.[^/]*(\.tmp|\.part|\.old)(\.[^/]*)?$|\.part$|(^|/)\.neuroseg-write-check")

def compare(before:dict, after:dict, keep:tuple=()) -> list[str]:
    "What changed between two snapshots, apart from paths matching `keep` (never temporaries)."
    kept = lambda p: any(re.fullmatch(k, p) and (not _TEMP.search(p) or _TEMP.search(k.replace("\\", ""))) for k in keep)   # a temporary only by name
    problems = [f"left behind: {p}" for p in sorted(after.keys() - before.keys()) if not kept(p)]
    problems += [f"input removed: {p}" for p in sorted(before.keys() - after.keys()) if not kept(p)]
    problems += [f"input changed: {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p] and not kept(p)]
    return problems

def _lines(text:str) -> list[str]:
    "The lines of a stream as a terminal shows them (a progress bar's carriage returns keep the last state)."
    return [re.sub(r"\x1b\[[0-9;]*m", "", l.split("\r")[-1]).rstrip() for l in text.splitlines()]

_ERROR_LINE = re.compile(r"^(error: |[\w.-]+: error: )")

def check_result(r:Result, code:int, names:tuple) -> list[str]:
    "Exit status, one error line naming `names`, no traceback."
    problems = [] if r.code == code else [f"exit status {r.code}, expected {code}"]
    if "Traceback (most recent call last)" in r.err + r.out: problems.append("traceback on stderr")
    lines = _lines(r.err)
    if code == 2:
        errors = [l for l in lines if _ERROR_LINE.match(l)]
        if len(errors) != 1: problems.append(f"{len(errors)} error lines on stderr, expected 1")
        elif (miss := [n for n in names if n not in errors[0]]): problems.append(f"error line does not name {', '.join(miss)}")
    elif names and not any(all(n in l for n in names) for l in lines):
        problems.append(f"no line on stderr names {', '.join(names)}")
    return problems

def _last_lines(r:Result) -> str:
    "The end of a command's stderr, on one line."
    return " | ".join(l for l in _lines(r.err) if l.strip())[-400:]

# ----------------------------------------------------------------------------------------------------- fixtures
CONFIG = """# fault suite: a 2-level U-Net, one step of one 32^3 patch, on 4 ellipsoid cases
data: {root: data, format: msd, convention: auto, spacing_mm: [1.0, 1.0, 1.0], roi_size: [32, 32, 32], num_samples: 1,
       num_workers: 0, num_folds: 2, fold: 0, test_fraction: 0.25}
model: {name: unet, head: regions, channels: [4, 8], strides: [2], num_res_units: 0}
train: {epochs: 1, batch_size: 1, lr: 0.01, warmup_epochs: 0, val_every: 1, seed: 0, device: cpu, out_dir: run}
infer: {overlap: 0.25, sw_batch_size: 1}
tracking: {mode: disabled, project: neuroseg-faults}
"""

@dataclasses.dataclass
class Fixtures:
    root: Path
    subs: dict = dataclasses.field(default_factory=dict)   # placeholders of the rows' arguments
    config_text: str = CONFIG
    server: subprocess.Popen|None = None
    @property
    def data(self): return self.root/"data"
    @property
    def run(self): return self.root/"run"
    @property
    def ckpt(self): return self.root/"run"/"checkpoints"/"best.pt"
    @property
    def case(self): return self.root/"data"/"imagesTr"/"BRATS_001.nii.gz"

def _tar(path:Path, members:dict):
    import tarfile
    with tarfile.open(path, "w") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name); info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))

def _free_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def serve_archives(fx:Fixtures):
    "Archives for neuroseg_download, served by `python -m http.server` on 127.0.0.1 (a process of its own)."
    srv = fx.root/"srv"; srv.mkdir()
    task = "Task01_BrainTumour"
    _tar(srv/"good.tar", {f"{task}/dataset.json": b'{"name": "tiny"}', f"{task}/imagesTr/x.txt": b"x"})
    _tar(srv/"nojson.tar", {f"{task}/imagesTr/x.txt": b"x"})
    (srv/"corrupt.tar").write_bytes(_random(20000, seed=1))
    _tar(srv/"big.tar", {f"{task}/dataset.json": b"{}", f"{task}/noise.bin": _random(600_000, seed=2)})
    for name in ("good", "nojson", "corrupt", "big"):
        fx.subs[f"md5_{name}"] = hashlib.md5((srv/f"{name}.tar").read_bytes()).hexdigest()
    port = _free_port()
    fx.server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(srv)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fx.subs["url"] = f"http://127.0.0.1:{port}"
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0: return
        time.sleep(0.05)
    raise RuntimeError("the archive server did not start")

def build_fixtures(work:Path, subprocess_mode:bool) -> Fixtures:
    "The tiny dataset, a trained checkpoint and the archive server, once per run."
    fx = Fixtures(work/"fixtures"); fx.root.mkdir(parents=True)
    (fx.root/"tiny.yaml").write_text(CONFIG)
    serve_archives(fx)
    steps = [("synth", "--out data --kind ellipsoid --n 4 --shape 32 32 32 --seed 0"), ("train", "--config tiny.yaml")]
    for script, args in steps:
        os.environ["NEUROSEG_FAULTS_MODULES"] = str(work/"logs"/f"fixture-{script}.modules")
        try: r = run_cli(script, shlex.split(args), fx.root, work/"logs"/f"fixture-{script}", subprocess_mode=subprocess_mode)
        finally: del os.environ["NEUROSEG_FAULTS_MODULES"]
        if r.code != 0: raise RuntimeError(f"fixture neuroseg_{script} {args} failed ({r.code}): {_last_lines(r)}")
    return fx

def warm_up(work:Path):
    "Import in this process what the fixture commands imported lazily, so that the rows' forks need not (no threads may start)."
    global PRELOADED
    names = [n for f in sorted((work/"logs").glob("fixture-*.modules")) for n in f.read_text().split()]
    PRELOADED = preload(names)
    if threading.active_count() != 1: print(f"fault suite: warning: {threading.active_count()} threads before forking", flush=True)

# ---------------------------------------------------------------------------------------------------- one row
def _mount(point:Path, kind:str) -> str|None:
    "Mount a tmpfs at `point`: 256 KiB (a full disk) or read-only; a reason when it cannot be done."
    if os.geteuid() != 0: return "not root, cannot mount a tmpfs"
    point.mkdir()
    opts = "size=256k" if kind == "full" else "ro,size=64k"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True, text=True)
    if r.returncode != 0: point.rmdir(); return f"mount -t tmpfs failed: {r.stderr.strip()[:100]}"
    if kind == "full": (point/"filler").write_bytes(b"\0" * (shutil.disk_usage(point).free - 8192))   # 8 KiB left
    return None

def run_row(row:Row, fx:Fixtures, work:Path, subprocess_mode:bool) -> dict:
    "Prepare the row's folder, run its command(s), check them; {'status': pass|fail|skip, 'problems': [...]}."
    w, logs = work/"rows"/row.name, work/"logs"/row.name
    w.mkdir(parents=True)
    mounted = False
    run = lambda args, hook="", tag="1": run_cli(row.script, shlex.split(args.format(**fx.subs)), w, logs/tag, hook,
                                                  row.timeout, subprocess_mode)
    try:
        if row.mount:
            if (why := _mount(w/"mnt", row.mount)): return dict(status="skip", problems=[why])
            mounted = True
        if row.setup: row.setup(w, fx)
        before = snapshot(w)
        names = (row.names,) if isinstance(row.names, str) else tuple(row.names)
        r = run(row.args, row.hook)
        problems = check_result(r, row.code, names)
        if row.then:
            if row.code == -9 and not any(_TEMP.search(p) or p.endswith(".publishing") for p in snapshot(w).keys() - before.keys()):
                problems.append("the killed command left no temporary file (the fault missed its moment)")
            r2 = run(row.then, tag="2")
            problems += [f"rerun: {p}" for p in check_result(r2, 0, ())]
            if r2.code != 0: problems.append(f"rerun: {_last_lines(r2)}")
        problems += compare(before, snapshot(w), row.keep)
        problems += [f"{p}: missing at the end" for p in row.must if not (w/p).is_file()]
        if problems and r.code != row.code: problems.append(f"stderr: {_last_lines(r)}")
        return dict(status="fail" if problems else "pass", problems=problems)
    finally:
        if mounted: subprocess.run(["umount", "-l", str(w/"mnt")], capture_output=True)

# ------------------------------------------------------------------------------------------------------- runner
def _order(rows:list) -> list:
    "Long rows first (training, reports, reruns), so that two workers finish together."
    cost = lambda r: (r.script == "train") * 3 + bool(r.then) * 3 + (r.script == "report") * 2 + (r.script == "infer")
    return sorted(rows, key=cost, reverse=True)

def _finish(row:Row, result:dict, secs:float) -> str:
    "The row's final status (pass, xfail, XPASS, skip, fail), printed on one line."
    status, problems = result["status"], result["problems"]
    if row.xfail and status == "fail": status = "xfail"
    elif row.xfail and status == "pass": status, problems = "XPASS", [f"passes now: remove xfail ({row.xfail})"]
    label = dict(pass_="ok   ", fail="FAIL ", xfail="xfail", XPASS="XPASS", skip="skip ")[status if status != "pass" else "pass_"]
    detail = row.xfail if status == "xfail" else "; ".join(problems)
    print(f"{label} {row.script:8s} {row.name:38s} {secs:5.1f} s" + (f"  {detail}" if detail and (status != "pass") else ""), flush=True)
    return "pass" if status == "XPASS" else status

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", help="only rows whose name contains one of these")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--subprocess", action="store_true", help="run the installed console scripts (slower) instead of warm forks")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    names = [r.name for r in ROWS]
    assert len(names) == len(set(names)), "row names must be unique"
    assert all(r.script in SCRIPTS for r in ROWS)
    rows = [r for r in ROWS if not args.only or any(o in r.name for o in args.only)]
    start = time.time()
    global PRELOADED
    if not args.subprocess: PRELOADED = preload()
    work = Path(tempfile.mkdtemp(prefix="neuroseg-faults-"))
    fx, counts = None, dict(pass_=0, xfail=0, skip=0, fail=0)
    try:
        fx = build_fixtures(work, args.subprocess)
        if not args.subprocess: warm_up(work)
        shared = snapshot(fx.root)
        print(f"fault suite: fixtures in {time.time() - start:.0f} s ({work})", flush=True)
        pending, running = _order(rows), {}
        while pending or running:
            while pending and len(running) < args.workers:
                row = pending.pop(0)
                sys.stdout.flush(); sys.stderr.flush()
                pid = os.fork()
                if pid == 0:   # one row
                    try: result = run_row(row, fx, work, args.subprocess)
                    except BaseException: result = dict(status="fail", problems=["the suite failed: " + traceback.format_exc(limit=3)[-600:]])
                    (work/"logs"/f"{row.name}.json").write_text(json.dumps(result))
                    os._exit(0)
                running[pid] = (row, time.time())
            pid, _ = os.wait()
            row, t0 = running.pop(pid)
            res = work/"logs"/f"{row.name}.json"
            result = json.loads(res.read_text()) if res.is_file() else dict(status="fail", problems=["the row's process died"])
            status = _finish(row, result, time.time() - t0)
            if status != "pass" and args.verbose:
                for tag in ("1", "2"):
                    if (e := work/"logs"/row.name/tag/"stderr").is_file(): print("      | " + e.read_text()[-1500:].replace("\n", "\n      | "))
            counts["pass_" if status == "pass" else status] += 1
        if (changed := compare(shared, snapshot(fx.root))):
            print(f"FAIL the shared fixtures changed: {'; '.join(changed[:5])}"); counts["fail"] += 1
    finally:
        if fx and fx.server: fx.server.kill(); fx.server.wait()
        for m in sorted((work/"rows").glob("*/mnt")) if (work/"rows").is_dir() else []:
            subprocess.run(["umount", "-l", str(m)], capture_output=True)
        if not args.keep: shutil.rmtree(work, ignore_errors=True)
    print(f"fault suite: {time.time() - start:.0f} s")
    print(f"fault suite: {len(rows)} rows, {counts['pass_']} passed, {counts['xfail']} expected failures, {counts['skip']} skipped, "
          f"{counts['fail']} failed")
    return 1 if counts["fail"] else 0

if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--exec":   # subprocess mode with a fault hook: --exec SCRIPT HOOK ARGS...
        sys.exit(_exec(sys.argv[2], sys.argv[3], sys.argv[4:]))
    sys.exit(main())
