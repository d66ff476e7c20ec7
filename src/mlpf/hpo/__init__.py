"""Hyperparameter optimisation: an Optuna study of short trainings, run by workers that share one storage.

- `space`: the search space from the `hpo.search_space` config section (keys named as in a config file);
- `study`: the storage (journal file or database), the study's definition, its trial budget, heartbeats and
  the retry of trials whose worker died;
- `objective`: one trial = one `mlpf.training.loop.train` run that reports its validation metric after every epoch;
- `worker`: the loop a worker job runs until the budget is spent;
- `report`: trial table, best configuration, figures and the default vs tuned comparison;
- `replicas`: the spread of trainings that differ only in their seed.

The workflow's rules (workflow/rules/hpo.smk, replicas.smk) call these through `mlpf hpo ...` and
`mlpf replicas ...`; docs/hpo.md describes how to run a study on a laptop, a GPU and a SLURM cluster.
"""

from __future__ import annotations
