"""Sentiment analysis: negative or positive, with a probability, from TF-IDF to a fine-tuned transformer.

Run `python -m projects.sentiment --help`.
"""
