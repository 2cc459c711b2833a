"""`python -m projects.recommender <command>`: hand the command line to the core."""

from projects.recommender.project import RecommenderProject
from shared.cli import main

if __name__ == "__main__":
    main(RecommenderProject())
