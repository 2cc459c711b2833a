"""CIFAR-10 image classification: a ResNet-9, the airbench speed-run network and torchvision architectures.

Run `python -m projects.vision --help`.
"""
