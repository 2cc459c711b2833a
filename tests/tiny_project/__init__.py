"""A seventh project that lives only under tests/: proof that a project needs no change to `shared/`.

Three Gaussian blobs in the plane, a scikit-learn logistic regression and a small Lightning network, its own
metric (the Brier score), its own records (`{"x": .., "y": ..}`) and its own configs in `configs/` beside it.
"""
