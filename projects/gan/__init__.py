"""Generative adversarial networks on MNIST and Fashion-MNIST: a DCGAN and a class-conditional GAN, measured by a
classifier this repository trained (the judge) rather than eyeballed.

Run `python -m projects.gan --help`.
"""
