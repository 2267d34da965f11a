"""Score a model on the shared real BraTS cases with expert labels, with neuroseg's own commands, as a user runs them.

    python tools/score_real.py --ckpt pretrained:brats --cases heldout --out runs/score-brats
    python tools/score_real.py --ckpt pretrained:synth --cases all --out runs/score-synth

`heldout`: the cases no shipped model ever trains on (the test subset of configs/brats-real-split.json and the BraTS
2023 case); `all`: the 15 cases (a fair test only for a model that saw no real case, such as pretrained:synth).
Each BraTS 2021 case is segmented by `neuroseg_infer` in a batch, the 2023 case alone with its own label convention
(timed as one case from the command line), and everything is scored by `neuroseg_evaluate` (BraTS legacy HD95).
Writes <out>/scores.json and prints a Markdown table: Dice, HD95 (mm) and volumes (mL) per case and region.
"""
from __future__ import annotations
import argparse, json, subprocess, sys, time
from pathlib import Path
from neuroseg.metrics import describe_values
from neuroseg.report import read_metrics_csv
from real_data import find_real_data   # tools/real_data.py: Python puts a script's folder first on sys.path

ROOT = Path(__file__).resolve().parent.parent

BIN = Path(sys.executable).parent
SPLIT = ROOT/"configs"/"brats-real-split.json"
REGIONS = ("WT", "TC", "ET")
LESION_MEANS = ("lesion_brats2023_dice", "lesion_brats2023_hd95", "lesion_pq_dsc")   # per case and region, averaged like the Dice
LESION_COUNTS = ("lesion_brats2023_tp", "lesion_brats2023_fn", "lesion_brats2023_fp")   # summed over the cases

def run(*args) -> float:
    "Run a neuroseg command; its wall time in seconds; stop on failure with its stderr."
    tick = time.perf_counter()
    done = subprocess.run([str(BIN/args[0]), *map(str, args[1:])], capture_output=True, text=True)
    if done.returncode: sys.exit(f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - tick

def rows(csv_path:Path) -> list[dict]:
    "The region rows of a neuroseg_evaluate metrics.csv, metric columns as floats (the report's reader)."
    return [r for r in read_metrics_csv(csv_path) if r["region"] in REGIONS]

def score(ckpt:str, data:Path, cases:str, out:Path, postprocess:str) -> dict:
    "Segment and score; the per-case rows, their means and the timings."
    b21, b23 = data/"brats2021", data/"brats2023"
    subset = ["--split", SPLIT, "--subset", "test"] if cases == "heldout" else []
    post = ["--postprocess", postprocess]
    t21 = run("neuroseg_infer", "--ckpt", ckpt, "--input", b21, *subset, *post, "--convention", "brats2021", "--out", out/"pred2021")
    run("neuroseg_evaluate", "--pred", out/"pred2021", "--ref", b21, *subset, "--convention", "brats2021", "--lesion-wise", "--out", out/"eval2021")
    seconds = {}
    for case in sorted(p.name for p in b23.iterdir() if p.is_dir()):
        seconds[case] = run("neuroseg_infer", "--ckpt", ckpt, "--input", b23/case, "--convention", "brats2023", *post,
                            "--out", out/"pred2023"/f"{case}.nii.gz")
    run("neuroseg_evaluate", "--pred", out/"pred2023", "--ref", b23, "--convention", "brats2023", "--lesion-wise", "--out", out/"eval2023")
    table = rows(out/"eval2021"/"metrics.csv") + rows(out/"eval2023"/"metrics.csv")
    n21 = len({r["case"] for r in table}) - len(seconds)
    region = lambda r, k: [x[k] for x in table if x["region"] == r]
    mean = {r: {k: describe_values(region(r, k))["mean"] for k in ("dice", "hd95", "ref_volume_ml", "pred_volume_ml", *LESION_MEANS)}
            for r in REGIONS}   # metrics.summarise's statistics; summarise itself refuses rows of two label conventions
    lesions = {r: {k: int(sum(region(r, k))) for k in LESION_COUNTS} for r in REGIONS}
    return dict(ckpt=ckpt, cases=cases, postprocess=postprocess, n_cases=n21 + len(seconds), rows=table, mean=mean, lesion_counts=lesions,
                batch_seconds_2021=t21, batch_cases_2021=n21, one_case_cli_seconds=seconds)

def by_case(rows:list) -> dict:
    "The metric rows as {case: {region: row}}, in their order."
    out = {}
    for r in rows: out.setdefault(r["case"], {})[r["region"]] = r
    return out

def markdown(s:dict) -> str:
    "The per-case table and the mean row."
    head = "| case | " + " | ".join(f"Dice {r}" for r in REGIONS) + " | " + " | ".join(f"HD95 {r}" for r in REGIONS) + \
           " | " + " | ".join(f"vol {r} pred/ref" for r in REGIONS) + " |"
    lines = [head, "|" + "---|" * 10]
    for case, regs in by_case(s["rows"]).items():
        lines.append(f"| {case} | " + " | ".join(f"{float(regs[r]['dice']):.3f}" for r in REGIONS) + " | "
                     + " | ".join(f"{float(regs[r]['hd95']):.1f}" for r in REGIONS) + " | "
                     + " | ".join(f"{float(regs[r]['pred_volume_ml']):.1f}/{float(regs[r]['ref_volume_ml']):.1f}" for r in REGIONS) + " |")
    m = s["mean"]
    lines.append("| **mean** | " + " | ".join(f"**{m[r]['dice']:.3f}**" for r in REGIONS) + " | "
                 + " | ".join(f"**{m[r]['hd95']:.1f}**" for r in REGIONS) + " | "
                 + " | ".join(f"{m[r]['pred_volume_ml']:.1f}/{m[r]['ref_volume_ml']:.1f}" for r in REGIONS) + " |")
    return "\n".join(lines)

def lesion_markdown(s:dict) -> str:
    "Lesion by lesion, as BraTS has ranked since 2023: the challenge's lesion-wise Dice (added lesions) per case, then the means and counts."
    lines = ["| case | " + " | ".join(f"{r} lesion Dice (FP)" for r in REGIONS) + " |", "|" + "---|" * 4]
    for case, regs in by_case(s["rows"]).items():
        lines.append(f"| {case} | " + " | ".join(f"{float(regs[r]['lesion_brats2023_dice']):.2f} ({int(float(regs[r]['lesion_brats2023_fp']))})"
                                                  for r in REGIONS) + " |")
    m, n = s["mean"], s["lesion_counts"]
    lines.append("| **mean (FP in all)** | " + " | ".join(f"**{m[r]['lesion_brats2023_dice']:.3f}** ({n[r]['lesion_brats2023_fp']})" for r in REGIONS) + " |")
    lines.append("\nlesion-wise HD95 (mm) " + ", ".join(f"{r} {m[r]['lesion_brats2023_hd95']:.1f}" for r in REGIONS)
                 + "; pq_dsc " + ", ".join(f"{r} {m[r]['lesion_pq_dsc']:.3f}" for r in REGIONS)
                 + "; lesions found / missed " + ", ".join(f"{r} {n[r]['lesion_brats2023_tp']}/{n[r]['lesion_brats2023_fn']}" for r in REGIONS))
    return "\n".join(lines)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="checkpoint file or pretrained:<name>")
    p.add_argument("--cases", choices=["heldout", "all"], default="heldout")
    p.add_argument("--out", required=True, help="a new folder for predictions, evaluations and scores.json")
    p.add_argument("--postprocess", default="model", help="model, none or a decision file (as neuroseg_infer)")
    a = p.parse_args(argv)
    out = Path(a.out)
    if out.exists(): sys.exit(f"{out}: exists; choose a new --out")
    if (data := find_real_data(quiet=True)) is None: sys.exit("no real BraTS cases found (python tools/real_data.py --fetch)")
    s = score(a.ckpt, data, a.cases, out, a.postprocess)
    (out/"scores.json").write_text(json.dumps(s, indent=2) + "\n")
    print(markdown(s))
    print("\n" + lesion_markdown(s))
    print(f"\n{s['n_cases']} cases; batch of {s['batch_cases_2021']} BraTS 2021 cases {s['batch_seconds_2021']:.1f} s; "
          + ", ".join(f"{c} alone {t:.1f} s" for c, t in s["one_case_cli_seconds"].items()) + f"; wrote {out/'scores.json'}")

if __name__ == "__main__": main()
