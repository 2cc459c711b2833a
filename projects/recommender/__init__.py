"""Movie recommendations on MovieLens: rating prediction (RMSE on the official folds) and top-N ranking.

Run `python -m projects.recommender --help`.
"""
