"""Make a shipped model from a finished training run: choose its postprocessing on cases it never trained on, score
it on the real cases it never saw, and write it into neuroseg/models with its model card (the registry entry).

    python tools/ship_models.py brats --ckpt runs/brats-all/checkpoints/last.pt --postprocess-from runs/brats-cv/postprocess.json
    python tools/ship_models.py synth --ckpt runs/brats-synth-wide-all/checkpoints/last.pt
    python tools/ship_models.py brats --postprocess-from runs/brats-cv/postprocess-lesion.json   # a new decision only
    python tools/ship_models.py synth                  # a new decision only, chosen again on synthetic brains

- `brats` (trained on real cases): the postprocessing is chosen on the validation fold of configs/brats-real-split.json
  (fold 0: two real cases the model validated on but never trained on), or taken with --postprocess-from from the
  cross-validation of the same cases (neuroseg_cv's choice on out-of-fold predictions) when the model trained on every
  fold; it is scored on the held-out test cases.
- `synth` (trained on synthetic brains only): the postprocessing is chosen on 8 fresh synthetic brains (a seed no
  training epoch used) drawn with the generator settings the checkpoint trained on (its data.synth_tumour_mm,
  synth_lookalikes, synth_wide_normal), so no real case informs any of its choices; it is scored on all 15 real cases.

Everything runs through neuroseg's own commands (neuroseg_infer, neuroseg_postprocess, tools/score_real.py) and lands in
runs/ship-<name>/; the checkpoint is written last, with its sha256, so an interrupted run ships nothing. Without --ckpt,
the shipped weights stay as they are (not a byte of the 19 MB file changes, so the repository's history does not grow):
the model is scored again with the new decision and the registry records it (`set_shipped_postprocess`).

A model card's prose (description, data, commands) is package data: it lives in the registry entry
(neuroseg/models/models.json), is edited there, and is kept as it is; this script adds what it measures (the cases, the
postprocessing decision, the scores, the timings).
"""
import argparse, json, subprocess, sys
from pathlib import Path

from real_data import find_real_data   # tools/real_data.py: Python puts a script's folder first on sys.path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

SPLIT = ROOT/"configs"/"brats-real-split.json"
HELD_OUT_2023 = ["BraTS-GLI-00000-000"]   # the brats2023 case, held out beside the split's test cases

def held_out() -> list:
    "Every real case no shipped model trains on or chooses anything by."
    return sorted(json.loads(SPLIT.read_text())["test"]) + HELD_OUT_2023
SYNTH_SEED = 987654   # the synthetic brains that choose pretrained:synth's postprocessing (no training epoch's seed)

def run(*args):
    "Run a command, echo it, stop on failure."
    print("$", " ".join(map(str, args)), flush=True)
    subprocess.run([str(a) for a in args], check=True)

def trained_generator(ckpt:str) -> list:
    "neuroseg_synth's options for brains drawn as `ckpt`'s training run drew them (its config's data.synth_* settings)."
    from neuroseg.checkpoint import config_from_checkpoint
    from neuroseg.pretrained import load_model_checkpoint
    d = config_from_checkpoint(load_model_checkpoint(ckpt)).data
    return ["--tumour_mm", *d.synth_tumour_mm, "--lookalikes", d.synth_lookalikes, "--wide_normal", d.synth_wide_normal]

def choose_postprocess(name:str, ckpt:str, data:Path, work:Path, criterion:str) -> Path:
    "The decision file of `neuroseg_postprocess` (choosing by `criterion`) on cases `ckpt` never trained on."
    if name == "brats":
        b21 = data/"brats2021"
        run(BIN/"neuroseg_infer", "--ckpt", ckpt, "--input", b21, "--split", SPLIT, "--subset", "val", "--fold", "0",
            "--postprocess", "none", "--convention", "brats2021", "--out", work/"val-pred")
        run(BIN/"neuroseg_postprocess", "--pred", work/"val-pred", "--ref", b21, "--split", SPLIT, "--subset", "val", "--fold", "0",
            "--convention", "brats2021", "--criterion", criterion, "--out", work/"postprocess.json")
    else:
        run(BIN/"neuroseg_synth", "--out", work/"synth-val", "--kind", "brain", "--n", "8", "--spacing", "1.5", "--seed", SYNTH_SEED,
            *trained_generator(ckpt))
        run(BIN/"neuroseg_infer", "--ckpt", ckpt, "--input", work/"synth-val"/"imagesTr", "--postprocess", "none", "--convention", "msd",
            "--out", work/"val-pred")
        run(BIN/"neuroseg_postprocess", "--pred", work/"val-pred", "--ref", work/"synth-val"/"labelsTr", "--convention", "msd",
            "--criterion", criterion, "--out", work/"postprocess.json")
    return work/"postprocess.json"

def adopt_postprocess(path:str, work:Path) -> str:
    "A decision chosen elsewhere (neuroseg_cv's, on out-of-fold predictions), copied into `work` with where it came from."
    decision = json.loads(Path(path).read_text())
    if set(decision.get("cases", [])) & set(held_out()):
        sys.exit(f"ship_models: {path} was chosen on held-out test cases")
    work.mkdir(parents=True)
    text = json.dumps({**decision, "source": str(path)}, indent=2)
    (work/"postprocess.json").write_text(text)
    return text

def ran_in(ckpt:str, out_dir:str) -> Path:
    "The folder a run was started in: its checkpoint's path without `<out_dir>/checkpoints/<file>` (else this one)."
    run_dir, out = Path(ckpt).resolve().parent.parent, Path(out_dir)
    return run_dir.parents[len(out.parts) - 1] if run_dir.parts[-len(out.parts):] == out.parts else Path.cwd()

def cases_seen(ckpt:str) -> tuple[list, list]:
    """The real cases `ckpt`'s training trained on, and those it trained or validated on: its split files' subsets for
    each run's fold (-1: every fold), through the checkpoints it started from (`train.init_from`: a run's checkpoint,
    found where that run was started, or a shipped model, whose card lists its cases)."""
    from neuroseg.core import find_config
    from neuroseg.data import split_subset_ids
    from neuroseg.pretrained import PREFIX, is_model_name, load_model_checkpoint, read_registry
    trained, seen, spec = set(), set(), ckpt
    while spec:
        cfg = load_model_checkpoint(spec)["config"]
        d, init = cfg["data"], cfg["train"].get("init_from")
        if d.get("format") != "synth":   # synthetic brains: no real case
            if not d.get("split_file"): sys.exit(f"ship_models: {spec}: a run of {ckpt}'s lineage names no split file (data.split_file)")
            split, fold = find_config(d["split_file"]), d.get("fold", 0)
            trained |= set(split_subset_ids(split, "train", fold))
            seen |= trained | set(split_subset_ids(split, "val", fold))
        if not init: break
        if is_model_name(init):
            cases = set(read_registry()[init[len(PREFIX):]].get("trained_on", []))
            trained, seen = trained | cases, seen | cases
            break
        found = [p for p in (Path(init), ran_in(spec, cfg["train"]["out_dir"])/init) if p.is_file()]
        if not found:
            print(f"ship_models: {spec} started from {init}, not found here: the cases that one saw are not checked", flush=True)
            break
        spec = str(found[0])
    return sorted(trained), sorted(seen)

CARD_TEXT = ("description", "data", "commands")   # a model card's prose: package data, kept in the registry (models.json)

def card_text(name:str) -> dict:
    "The prose of `name`'s model card, from the registry, and which real cases score it (`heldout`, or `all` for a model that saw none)."
    from neuroseg.pretrained import read_registry
    registry = read_registry()
    if name not in registry:
        sys.exit(f"ship_models: no registry entry {name!r} in neuroseg/models/models.json: write its {', '.join(CARD_TEXT)} there first")
    entry = registry[name]
    missing = [k for k in CARD_TEXT if not entry.get(k)]
    if missing: sys.exit(f"ship_models: neuroseg/models/models.json: {name} lacks {', '.join(missing)}")
    return {k: entry[k] for k in CARD_TEXT} | dict(cases="heldout" if isinstance(entry.get("held_out"), list) else "all")

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="the shipped model's name (its registry entry holds the card's text: edit it there)")
    ap.add_argument("--ckpt", help="the run's checkpoint (left out: keep the shipped weights, record a new --postprocess-from)")
    ap.add_argument("--postprocess-from", metavar="FILE", help="take the postprocessing decision from this file (neuroseg_cv's "
                    "postprocess.json, chosen on out-of-fold predictions) instead of choosing it here")
    ap.add_argument("--criterion", choices=["dice", "lesion"], default="lesion", help="what the postprocessing chosen here must raise: "
                    "the BraTS 2023 lesion-wise Dice (default, as BraTS ranks) or the voxel Dice")
    a = ap.parse_args(argv)
    if not (a.ckpt or a.postprocess_from or a.name == "synth"):
        ap.error("give --ckpt (a new model), --postprocess-from (a new decision), or both")
    ckpt = a.ckpt or f"pretrained:{a.name}"
    if (data := find_real_data(quiet=True)) is None: sys.exit("ship_models: no real BraTS cases found (python tools/real_data.py --fetch)")
    work = ROOT/"runs"/f"ship-{a.name}"
    if work.exists(): sys.exit(f"ship_models: {work} exists; move it aside first")
    card = card_text(a.name)
    if card["cases"] == "heldout":   # the card lists the cases it trained on; none may be held out, nor chose a checkpoint
        card["trained_on"], seen = cases_seen(ckpt)
        if leaked := set(seen) & set(held_out()): sys.exit(f"ship_models: {ckpt} trained or validated on held-out cases {sorted(leaked)}")
    decision = json.loads(adopt_postprocess(a.postprocess_from, work) if a.postprocess_from else
                          choose_postprocess(a.name, ckpt, data, work, a.criterion).read_text())
    run(sys.executable, ROOT/"tools"/"score_real.py", "--ckpt", ckpt, "--cases", card["cases"], "--postprocess", work/"postprocess.json",
        "--out", work/"score")
    run(sys.executable, ROOT/"tools"/"score_real.py", "--ckpt", ckpt, "--cases", card["cases"], "--postprocess", "none",
        "--out", work/"score-raw")
    scores = {k: json.loads((work/k/"scores.json").read_text()) for k in ("score", "score-raw")}
    card.update(held_out=held_out() if card["cases"] == "heldout" else "none: it never saw a real case", scored_on=sorted({r["case"] for r in scores["score"]["rows"]}),
                postprocess_decision=dict(rules=decision["postprocess"], chosen_on=decision["cases"],
                                          criterion=decision.get("criterion", "dice"),
                                          **{k: decision[k] for k in ("dice_before", "dice_after", "lesion_dice_before", "lesion_dice_after") if k in decision},
                                          chosen_by=decision.get("source", "tools/ship_models.py")),
                mean=scores["score"]["mean"], mean_without_postprocessing=scores["score-raw"]["mean"],
                one_case_cli_seconds=scores["score"]["one_case_cli_seconds"])
    card.pop("cases")
    from neuroseg.pretrained import ship_checkpoint, set_shipped_postprocess
    if not a.ckpt:
        entry = set_shipped_postprocess(a.name, decision["postprocess"], **card)
        print(f"ship_models: pretrained:{a.name} keeps neuroseg/models/{entry['file']} (sha256 {entry['sha256'][:12]}...); "
              "its registry entry records the new postprocessing and scores")
        return
    entry = ship_checkpoint(a.ckpt, a.name, postprocess=decision["postprocess"], **card)
    print(f"ship_models: pretrained:{a.name} -> neuroseg/models/{entry['file']} ({entry['bytes'] / 2**20:.1f} MB, sha256 {entry['sha256'][:12]}...)")

if __name__ == "__main__":
    main()
