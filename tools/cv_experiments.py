"""The #25 experiments on a finished cross-validation's fold models, each decided on its out-of-fold cases alone.

    python tools/cv_experiments.py tta CV --config recipes/brats-cv.yaml data.root=<real>/brats2021
    python tools/cv_experiments.py tta CV --flips lr --config ...
    python tools/cv_experiments.py thresholds CV --config ...
    python tools/cv_experiments.py postprocess CV --config ...

CV is the folder of a finished `neuroseg_cv` run (its `cv.json` holds the baseline, the out-of-fold scores without
TTA); `--config` and the settings after it are that run's, so that the folds and cases are the same.

- `tta`: each fold's last checkpoint predicts its out-of-fold cases with flip TTA. `--flips all` is `neuroseg_infer
  --tta` itself (the 8 mirrors of the whole volume) and writes into `CV/oof-tta/`, where `neuroseg_cv --tta` would;
  `--flips lr` averages the identity and the left-right mirror (x in neuroseg's RAS grid) inside each sliding window,
  the cheapest TTA, which the package does not offer, into `CV/oof-tta-lr/`.
- `thresholds`: each region's sigmoid threshold searched over 0.20, 0.25, ..., 0.70 on the pooled out-of-fold
  probabilities (WT, then TC, then ET; labels nest as neuroseg writes them), the search itself cross-validated by fold.
- `postprocess`: no postprocessing, the rules chosen by Dice and those chosen by lesion-wise Dice, each scored out of
  sample by `nested_selection` (06a).

Each writes `CV/experiment-<name>.json` (never over an existing one) and prints its summary.
"""
from __future__ import annotations
import argparse, dataclasses, json, sys, time
from pathlib import Path
import numpy as np, torch
from torch import nn
from neuroseg.core import load_config, find_config, write_json_atomic
from neuroseg.cv import cv_split, split_cases, predict_cases, fold_dir, region_means, score, variant
from neuroseg.data import read_label_map
from neuroseg.infer import load_inference_model, predict
from neuroseg.labels import REGIONS, labels_to_regions
from neuroseg.metrics import compute_dice
from neuroseg.model import probabilities
from neuroseg.postprocess import Postprocess, scored_pairs, nested_selection, nest_regions

THRESHOLDS = [round(0.2 + 0.05 * i, 2) for i in range(11)]

class LeftRightTTA(nn.Module):
    "The mean of a network's probabilities on a window and on its left-right mirror, returned as logits."
    def __init__(self, model:nn.Module, head:str):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x:torch.Tensor) -> torch.Tensor:
        p = (probabilities(self.model(x), self.head) + probabilities(self.model(x.flip(-3)), self.head).flip(-3)) / 2
        p = p.clamp(1e-7, 1 - 1e-7)
        return torch.logit(p) if self.head == "regions" else torch.log(p)

def mean_dice(means:dict) -> float:
    "The mean of the three regions' Dice."
    return float(np.mean([means[r]["dice"] for r in REGIONS]))

def tta(cv:Path, cases:list, split:dict, convention:str, flips:str) -> dict:
    "Out-of-fold predictions with flip TTA; their pooled scores against the plain ones of `cv.json`."
    out, pairs, seconds = cv / (f"oof{variant(tta=True)}" if flips == "all" else "oof-tta-lr"), [], {}
    for fold in range(len(split["folds"])):
        im = load_inference_model(fold_dir(cv, fold) / "checkpoints" / "last.pt")
        if flips == "lr": im = dataclasses.replace(im, model=LeftRightTTA(im.model, im.cfg.model.head))
        for case in split_cases(cases, split, fold)[1]:
            tick = time.perf_counter()
            pairs += predict_cases(im, [case], out, tta=True if flips == "all" else None)
            seconds[case["id"]] = round(time.perf_counter() - tick, 1)
    pooled = region_means(score(pairs, convention)[1])
    plain = json.loads((cv / "cv.json").read_text())["pooled"]
    return dict(flips=flips, predictions=str(out), pooled=pooled, mean=mean_dice(pooled), plain=plain,
                plain_mean=mean_dice(plain), seconds_per_case=seconds)

def thresholds(cv:Path, cases:list, split:dict, convention:str) -> dict:
    "Per-region thresholds chosen on the out-of-fold probabilities, and that choice cross-validated by fold."
    store, data = cv / "oof-probs", {}
    store.mkdir(exist_ok=True)
    for fold in range(len(split["folds"])):
        im = None
        for case in split_cases(cases, split, fold)[1]:
            path = store / f"{case['id']}.npy"
            if not path.is_file():
                im = im or load_inference_model(fold_dir(cv, fold) / "checkpoints" / "last.pt")
                np.save(path, predict(case, im, postprocess=Postprocess()).probs.astype(np.float16))
            ref = labels_to_regions(read_label_map(case["label"]), convention)
            data[case["id"]] = (fold, np.load(path), ref)
    # the masks at thresholds t, nested as neuroseg's labels make them (ET wins over TC, TC over WT)
    masks = lambda probs, t: nest_regions(probs > np.asarray(t, np.float32)[:, None, None, None])
    dices = lambda ids, t: np.array([[compute_dice(m, r) for m, r in zip(masks(data[i][1], t), data[i][2])]
                                     for i in ids])
    def choose(ids:list) -> list:
        t = [0.5] * 3
        for k in range(3):   # the first best, nearest 0.5 among ties
            scores = {g: dices(ids, t[:k] + [g] + t[k + 1:])[:, k].mean() for g in THRESHOLDS}
            t[k] = max(THRESHOLDS, key=lambda g: (round(scores[g], 6), -abs(g - 0.5)))
        return t
    ids = list(data)
    plain, nested, by_fold = dices(ids, [0.5] * 3), np.zeros((len(ids), 3)), {}
    for fold in range(len(split["folds"])):
        inside = [i for i in ids if data[i][0] == fold]
        by_fold[fold] = choose([i for i in ids if data[i][0] != fold])
        nested[[ids.index(i) for i in inside]] = dices(inside, by_fold[fold])
    final = choose(ids)
    means = lambda a: dict(zip(REGIONS, a.mean(0).round(4).tolist()), mean=round(float(a.mean()), 4))
    return dict(plain=means(plain), nested=means(nested), chosen_by_fold=by_fold, chosen_on_all=final,
                on_all_in_sample=means(dices(ids, final)), cases=ids)

def postprocess(cv:Path, cases:list, split:dict, convention:str) -> dict:
    "No postprocessing, Dice-chosen and lesion-chosen rules, each scored on cases its choice did not see."
    folds = [(f, c) for f in range(len(split["folds"])) for c in split_cases(cases, split, f)[1]]
    scored = scored_pairs([(c["id"], cv / "oof" / f"{c['id']}.nii.gz", c["label"]) for _, c in folds], convention)
    groups, result = [f for f, _ in folds], {}
    for name, criterion, settings in (("none", "dice", dict(rules={})), ("dice", "dice", {}), ("lesion", "lesion", {})):
        n = nested_selection(scored, groups, criterion, **settings)
        result[name] = n | dict(average=round((n["dice_after"]["mean"] + n["lesion_dice_after"]["mean"]) / 2, 4))
    return result

def main(argv:list|None=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("experiment", choices=["tta", "thresholds", "postprocess"])
    parser.add_argument("cv", type=Path, help="a finished neuroseg_cv folder")
    parser.add_argument("--config", required=True, help="the cross-validation's config")
    parser.add_argument("--flips", choices=["all", "lr"], default="all", help="tta: the 8 mirrors or left-right only")
    parser.add_argument("overrides", nargs="*", help="the cross-validation's section.key=value settings")
    args = parser.parse_intermixed_args(argv)
    name = f"tta-{args.flips}" if args.experiment == "tta" else args.experiment
    out = args.cv / f"experiment-{name}.json"
    if out.exists(): sys.exit(f"{out}: exists; the experiment ran (delete it to run again)")
    if not (args.cv / "cv.json").is_file(): sys.exit(f"{args.cv}: no cv.json (run neuroseg_cv to the end first)")
    cfg = load_config(find_config(args.config), [*args.overrides, f"train.out_dir={args.cv}"])
    cases, convention, split = cv_split(cfg)
    run = dict(tta=lambda: tta(args.cv, cases, split, convention, args.flips),
               thresholds=lambda: thresholds(args.cv, cases, split, convention),
               postprocess=lambda: postprocess(args.cv, cases, split, convention))[args.experiment]
    tick = time.perf_counter()
    result = run() | dict(experiment=name, cv=str(args.cv), seconds=round(time.perf_counter() - tick, 1))
    write_json_atomic(out, result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("seconds_per_case", "cases")}, indent=1))
    print(f"wrote {out}")

if __name__ == "__main__":
    main()
