"""Run under torchrun by test_ddp.py: train a few steps, write this rank's weight checksum."""

import hashlib
import json
import os
import sys

import torch

from tissue_inn.progress import run_to_completion
from tissue_inn.training.trainer import TrainSettings, train

data, out = sys.argv[1], sys.argv[2]
s = TrainSettings(family="cinn", epochs=1, iterations_per_epoch=4, batch_size=200, n_blocks=2, hidden=16,
                  n_hidden_layers=1, val_fraction=0.1, seed=0, threads=1)
res = run_to_completion(train(data, s))
state = res.estimator.state_dict()
h = hashlib.sha256()
for k in sorted(state):
    h.update(state[k].detach().cpu().numpy().tobytes())
rank = int(os.environ["RANK"])
with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
    json.dump({"sha": h.hexdigest(), "world": torch.distributed.get_world_size(),
               "first": float(next(iter(res.estimator.net.parameters())).flatten()[0])}, fh)
torch.distributed.destroy_process_group()
