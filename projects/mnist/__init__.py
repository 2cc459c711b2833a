"""Handwritten digit classification on MNIST: a CNN, an MLP and a logistic-regression baseline.

Run `python -m projects.mnist --help`.
"""
