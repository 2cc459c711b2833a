"""`python -m projects.gan <command>`: hand the command line to the core."""

from projects.gan.project import GanProject
from shared.cli import main

if __name__ == "__main__":
    main(GanProject())
