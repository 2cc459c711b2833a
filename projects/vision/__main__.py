"""`python -m projects.vision <command>`: hand the command line to the core."""

from projects.vision.project import VisionProject
from shared.cli import main

if __name__ == "__main__":
    main(VisionProject())
