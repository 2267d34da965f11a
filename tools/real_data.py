"""The real MRI cases of the tests: find them, or fetch them by the manifest tools/real_data.json, and check them.

The cases never enter the repository (see the manifest's `about`). They are looked for, in this order:
`$NEUROSEG_REAL_DATA`, the shared copy beside the checkout (`../shared/data/real`), the cache
(`~/.cache/neuroseg/real-data`, which --fetch fills from the public URLs of the manifest, each file checked by size and
sha256). `make test` (tools/run_tests.py) runs the cells flagged `#| real` only when a complete copy is found.

    python tools/real_data.py                  # where the cases are; exit 1 with the hint when there are none
    python tools/real_data.py --fetch          # download the missing files into the cache (or $NEUROSEG_REAL_DATA)
    python tools/real_data.py --manifest-from DIR   # maintainers: rewrite sizes and sha256 from a complete copy
"""
import argparse, json, os, sys, urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT/"tools"/"real_data.json"
HINT = ("real-data tests skipped: no real MRI cases found; run `python tools/real_data.py --fetch` (downloads ~150 MB "
        "from public GitHub repositories) or set NEUROSEG_REAL_DATA to a copy (see tools/real_data.json)")
# Where each file comes from: public repositories at pinned commits (shared/data/real/README.md).
SOURCES = [   # (path prefix here, repository, commit, folder there, renames {name here: name there})
    ("TCGA-DU-7294/seg/", "BrainLesion/tutorials", "a2d3fffe821e0dfd3bb62520985239324eaeda9a",
     "BraTS-Toolkit/data/TCGA-DU-7294/TCGA-DU-7294_brainles/segmentation/", {"fusion-mav.nii.gz": "../fusion/mav.nii.gz"}),
    ("TCGA-DU-7294/", "BrainLesion/tutorials", "a2d3fffe821e0dfd3bb62520985239324eaeda9a",
     "BraTS-Toolkit/data/TCGA-DU-7294/TCGA-DU-7294_brainles/raw_bet/",
     {f"{m}.nii.gz": f"TCGA-DU-7294_{'fla' if m == 'flair' else m}_bet.nii.gz" for m in ("flair", "t1", "t1c", "t2")}),
    ("BraTS-GLI-00001-000/", "BrainLesion/tutorials", "a2d3fffe821e0dfd3bb62520985239324eaeda9a",
     "BraTS/data/segmentation/BraTS-GLI-00001-000/", {}),
    *[(f"brats2021/Brats18_CBICA_{c}_1/", "koriavinash1/BioExp", "c0a88e70e26d857720a23238a0e875d360974654",
       f"sample_vol/brats/Brats18_CBICA_{c}_1/", {}) for c in ("AMH", "APY", "ARZ", "ASG", "ASV", "AVG")],
    *[(f"brats2021/Brats18_{c}_1/", "koriavinash1/DeepBrainSeg", "5d4f3810f1c776050b6937b6db5b7afa17527efd",
       f"sample_volume/brats/Brats18_{c}_1/", {})
      for c in ("2013_11", "2013_23", "TCIA02_135", "TCIA02_606", "TCIA03_265", "TCIA10_628", "TCIA13_623")],
    ("brats2021/BraTS2021_00006/", "1brahimmohamed/Brain-Tumor-Segmentation-GP", "e96dd3bec302e1088033d56c072aa927f3f3aa4a",
     "Research/Slicer Extension/nvidia-Segmentation/Seg/BraTS2021_train/BraTS2021_00006/", {}),
    ("brats2023/BraTS-GLI-00000-000/", "hongweilibran/BraSyn", "890804083b446f3d6fa0b17a4ef09b174bcd0209",
     "data/reference/BraTS-GLI-00000-000/", {}),
]

def source_url(path:str) -> str:
    "The raw.githubusercontent.com address of a file of the manifest, from its path here."
    for prefix, repo, commit, folder, renames in SOURCES:
        if path.startswith(prefix):
            name = path[len(prefix):]
            there = os.path.normpath(folder + renames.get(name, name))
            return f"https://raw.githubusercontent.com/{repo}/{commit}/{urllib.parse.quote(there)}"
    raise SystemExit(f"real_data: no source known for {path}; add it to SOURCES")

def manifest_files(manifest:Path|None=None) -> list:
    "The manifest's entries (default: tools/real_data.json): path, url, size, sha256."
    return json.loads((manifest or MANIFEST).read_text())["files"]

def write_manifest(folder:Path, manifest:Path|None=None):
    "Maintainers: write the manifest from a complete local copy (sizes and sha256 computed here, URLs from SOURCES)."
    from neuroseg.download import sha256_file
    files = [dict(path=p, url=source_url(p), size=(folder/p).stat().st_size, sha256=sha256_file(folder/p))
             for p in sorted(str(f.relative_to(folder)) for f in folder.rglob("*.nii.gz"))]
    about = ("Real glioma cases for the tests that need real anatomy (cells flagged `#| real`): TCGA-DU-7294 with five "
             "BraTS 2020 algorithm segmentations and their fusion, BraTS-GLI-00001-000 (no labels), 14 BraTS 2018/2021 and "
             "1 BraTS 2023 expert-labelled training cases. Byte-identical copies of files in public GitHub repositories "
             "at pinned commits; images and labels remain under the BraTS and TCIA terms (cite BraTS and TCIA when "
             "publishing). Written by `python tools/real_data.py --manifest-from DIR`.")
    (manifest or MANIFEST).write_text(json.dumps(dict(about=about, files=files), indent=1) + "\n")
    print(f"real_data: wrote {manifest or MANIFEST} ({len(files)} files, {sum(f['size'] for f in files) / 1e6:.0f} MB)")

def candidates() -> list:
    "(folder, where it comes from) in the order they are tried."
    from neuroseg.core import real_data_cache   # the cache the library itself reads; only this tool knows the shared copy
    out = []
    if os.environ.get("NEUROSEG_REAL_DATA"): out.append((Path(os.environ["NEUROSEG_REAL_DATA"]), "$NEUROSEG_REAL_DATA"))
    out.append((ROOT.parent/"shared"/"data"/"real", "the shared copy beside the checkout"))
    out.append((real_data_cache(), "the cache"))
    return out

def find_real_data(fetch:bool=False, quiet:bool=False) -> Path|None:
    "A folder holding every file of the manifest, checked by size and sha256; with `fetch`, fill the first writable one."
    from neuroseg.core import NeurosegError
    from neuroseg.download import check_manifest, fetch_manifest
    files = manifest_files()
    for folder, origin in candidates():
        if folder.is_dir() and not check_manifest(files, folder):
            if not quiet: print(f"real_data: {len(files)} files checked in {folder} ({origin})")
            return folder
    if not fetch: return None
    folder, origin = candidates()[0] if os.environ.get("NEUROSEG_REAL_DATA") else candidates()[-1]
    print(f"real_data: fetching {len(check_manifest(files, folder))} missing or wrong files into {folder} ({origin})")
    try: return fetch_manifest(files, folder, progress=True)
    except NeurosegError as e:
        print(f"real_data: {e}", file=sys.stderr)
        return None

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fetch", action="store_true", help="download missing files into the cache (or $NEUROSEG_REAL_DATA)")
    ap.add_argument("--manifest-from", type=Path, metavar="DIR", help="maintainers: rewrite the manifest from a complete copy")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.manifest_from: return write_manifest(args.manifest_from.resolve())
    folder = find_real_data(fetch=args.fetch)
    if folder is None:
        print(HINT, file=sys.stderr)
        return 1
    print(folder)
    return 0

if __name__ == "__main__":
    sys.exit(main())
