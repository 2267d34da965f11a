"""nnU-Net v2 trainers for neuroseg's same-budget CPU comparison (issue #25).

`python tools/nnunet_compare.py setup` copies this file into the nnU-Net venv's
`nnunetv2/training/nnUNetTrainer/`, where `nnUNetv2_train -tr <name>` finds trainer classes.

- `nnUNetTrainer_NeurosegCPU`: nnU-Net's default trainer (network, loss, deep supervision, augmentation, SGD with
  poly decay, oversampling: all unchanged) with a schedule that fits the wall-clock budget of `pretrained:brats` on
  this machine's 2 CPU cores, and a checkpoint after every epoch, so that `nnUNetv2_train ... --c` resumes after a
  kill with at most one epoch lost. Its numbers come from the timing run (`nnunet_compare.py timing`); the decision is
  recorded in tools/nnunet_compare.py's docstring.
- `nnUNetTrainer_NeurosegCPUTiming`: one short epoch that logs the seconds of every step, and no final validation.
"""
import time

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_NeurosegCPU(nnUNetTrainer):
    "nnU-Net's default trainer; epochs and iterations fitted to the CPU budget per configuration; a checkpoint every epoch."
    # (epochs, training iterations per epoch, validation iterations per epoch); nnU-Net's defaults: (1000, 250, 50).
    # Fitted to the 14,820 s budget from the measured seconds per iteration (nice 19, 2 shared cores; see
    # tools/nnunet_compare.py, "Measured and decided"): 3d_fullres 174 s -> 19 x (4 x 174 + 58 + 5) = 14,430 s;
    # 2d 67 s -> 21 x (10 x 67 + 22 + 5) = 14,640 s. An epoch (~12 min) is the most that a kill can lose with --c.
    SCHEDULES = {"3d_fullres": (19, 4, 1), "2d": (21, 10, 1)}

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        # the same signature as nnUNetTrainer's: it records its init arguments by name for checkpoints
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = self.schedule(configuration)
        self.save_every = 1

    def schedule(self, configuration):
        "(epochs, iterations, validation iterations) of a configuration."
        if configuration not in self.SCHEDULES: raise RuntimeError(f"no CPU schedule fitted for {configuration}")
        return self.SCHEDULES[configuration]


class nnUNetTrainer_NeurosegCPUTiming(nnUNetTrainer_NeurosegCPU):
    "One short epoch that logs each step's seconds (compute, and wall since the previous step); no final validation."

    def schedule(self, configuration):
        "One epoch of 4 training and 2 validation steps."
        return 1, 4, 2

    def _timed(self, kind, step, batch):
        "Run one step; log its compute seconds and the wall seconds since the previous step of its kind began."
        now = time.perf_counter()
        since = now - getattr(self, f"_last_{kind}", now)
        setattr(self, f"_last_{kind}", now)
        out = step(batch)
        self.print_to_log_file(f"neuroseg-timing {kind} compute {time.perf_counter() - now:.2f} s, "
                               f"since previous {since:.2f} s")
        return out

    def train_step(self, batch):
        return self._timed("train", super().train_step, batch)

    def validation_step(self, batch):
        return self._timed("val", super().validation_step, batch)

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("neuroseg-timing: final validation skipped")
