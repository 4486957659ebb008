"""monitor: an event-monitoring alert service for East Asian trade diplomacy."""

__version__ = "0.1.0"
