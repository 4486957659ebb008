"""The pipeline stages: fetch → parse → dedupe → extract → match; run.py knows their order."""
