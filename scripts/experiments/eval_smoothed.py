"""``fmpolicy eval`` with every predicted chunk low-passed along time by the kernel [1, 2, 1] / 4 (ends
repeated): does a one-step student lose to its teacher through rough chunks? (It does not: results page,
"NFE 1: where the one-step student departs from its teacher".) Not a key: it did not help.

    python scripts/experiments/eval_smoothed.py eval checkpoint=runs/p12/sw10_t2 eval.episodes=1000 \
        eval.videos=0 out=runs/p12/sw10_t2/eval1000_smooth121
"""

import sys

import numpy as np

from fmpolicy.cli import main
from fmpolicy.policy import api

unsmoothed = api.Policy._sample


def smoothed(self: api.Policy, *args: object) -> np.ndarray:
    a = unsmoothed(self, *args)
    padded = np.concatenate([a[:, :1], a, a[:, -1:]], 1)
    return 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 0.25 * padded[:, 2:]


api.Policy._sample = smoothed
sys.exit(main(sys.argv[1:]))
