"""The HTTP API and web page (FastAPI, served by uvicorn)."""
