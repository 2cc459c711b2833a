"""`python -m projects.sentiment <command>`: hand the command line to the core."""

from projects.sentiment.project import SentimentProject
from shared.cli import main

if __name__ == "__main__":
    main(SentimentProject())
