"""Neutral presentation helpers every layer may import: Markdown tables, plots, HTML pages.

Nothing here knows about data sets, models or generation; each layer builds its
own tables and pages from these pieces (see ARCHITECTURE.md, "What may import what").
"""
