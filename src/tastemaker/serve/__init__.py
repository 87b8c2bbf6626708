"""``tastemaker serve``: recommendations, explanations and generation over HTTP (FastAPI).

``create_app(ServeSettings(...))`` (``serve/app.py``) is the whole service; the CLI
(``cli/serve.py``) runs it under uvicorn. FastAPI is imported only by the modules
that need it, so importing this package is cheap.
"""
