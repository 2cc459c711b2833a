"""`tune`: hyperparameter search with Optuna over any project's train config.

`space` reads and checks a search space (`configs/<project>/search/<name>.yaml`), `trial` is what a train run does
differently as a trial (no test split; scikit-learn models scored by cross-validation on train), `pruning` is the
Lightning callback that reports to the trial, `command` drives the study (workers, storage, retraining), `report`
writes its outputs (the preset, the trials table, the plots). Nothing here names a project.
"""
