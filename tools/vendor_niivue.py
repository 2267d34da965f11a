"""Vendor NiiVue's browser build into the package: neuroseg/static/niivue.umd.js, checked by sha256.

The offline viewer pages (09c_viewer) embed NiiVue (https://github.com/niivue/niivue, BSD 2-Clause; its licence is
neuroseg/static/NIIVUE_LICENSE) so that they open with no network. This fetches the pinned release from the npm
registry with `npm pack`, checks its UMD build against the digest below, and copies it in place. To move to another
release, change VERSION, run with --update-digest, look at the viewer in headless Chromium, and commit both.

    python tools/vendor_niivue.py [--update-digest]
"""
import argparse, hashlib, shutil, subprocess, sys, tarfile, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = "0.69.0"
SHA256 = "47b896b77ec4a5be3ef1949c33ad393b6f45629921f326c279000bcf51bdb4af"
TARGET = ROOT/"neuroseg"/"static"/"niivue.umd.js"

def fetch(version:str, folder:Path) -> Path:
    "The UMD build of @niivue/niivue `version`, unpacked from its npm tarball into `folder`."
    done = subprocess.run(["npm", "pack", f"@niivue/niivue@{version}", "--silent"], cwd=folder, capture_output=True, text=True)
    if done.returncode != 0: sys.exit(f"vendor_niivue: npm pack failed: {done.stderr.strip()[-500:]}")
    with tarfile.open(folder/done.stdout.strip().splitlines()[-1]) as tar:
        tar.extract("package/dist/niivue.umd.js", folder, filter="data")
    return folder/"package"/"dist"/"niivue.umd.js"

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update-digest", action="store_true", help="print the digest of the fetched build instead of checking it")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        build = fetch(VERSION, Path(tmp))
        digest = hashlib.sha256(build.read_bytes()).hexdigest()
        if args.update_digest: print(f"SHA256 = \"{digest}\""); return 0
        if digest != SHA256: sys.exit(f"vendor_niivue: @niivue/niivue {VERSION}: sha256 {digest}, expected {SHA256}")
        shutil.copyfile(build, TARGET)
    print(f"vendor_niivue: {TARGET.relative_to(ROOT)} is @niivue/niivue {VERSION} ({TARGET.stat().st_size / 1e6:.2f} MB)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
