"""`fmpolicy finetune` with the fine-tuned model starting from another run's weights instead of the FM's.

An experiment of docs/results/pusht_few_step.md (progressive distillation with the student started from its
teacher); it did not help, so it is no key of `fmpolicy finetune`. The latents and sample pairs still come
from `checkpoint=` (and `method.pair_teacher=`), as in any fine-tuning run.
Usage: python scripts/experiments/finetune_from_weights.py RUN_OR_CHECKPOINT key=value ...
"""

import sys
from typing import Any

import fmpolicy.policy.finetune as finetune_module
from fmpolicy.cli import main
from fmpolicy.policy.api import model_from_checkpoint
from fmpolicy.policy.checkpoint import load_checkpoint

weights = sys.argv.pop(1)
build_model = finetune_module.build_model


def build_started_model(cfg: dict[str, Any]) -> Any:
    """The model ``finetune`` builds, whose ``load_state_dict`` (given the FM's weights) loads ``weights``'s."""
    model = build_model(cfg)
    load = model.load_state_dict

    def load_weights(_fm_state: Any, *args: Any, **kwargs: Any) -> Any:
        print(f"the fine-tuned model starts from the weights of {weights}")
        return load(model_from_checkpoint(load_checkpoint(weights)).state_dict(), *args, **kwargs)

    model.load_state_dict = load_weights
    return model


finetune_module.build_model = build_started_model
sys.exit(main(["finetune", *sys.argv[1:]]))
