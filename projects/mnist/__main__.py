"""`python -m projects.mnist <command>`: hand the command line to the core."""

from projects.mnist.project import MnistProject
from shared.cli import main

if __name__ == "__main__":
    main(MnistProject())
