"""`python -m projects.housing <command>`: hand the command line to the core."""

from projects.housing.project import HousingProject
from shared.cli import main

if __name__ == "__main__":
    main(HousingProject())
