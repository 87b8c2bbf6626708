"""Personalized text generation after LaMP (Salemi et al., arXiv 2304.11406).

A user's profile (their earlier records: item text + their own output, a tag or
a rating) is retrieved into an LLM's prompt for four tasks on MovieLens:
movie tagging (LaMP-2 analog), tag generation, rating (LaMP-3 analog) and
explanations of recommendations. Importing this package is cheap: polars,
torch, transformers and bm25s load inside the functions that need them.
"""
