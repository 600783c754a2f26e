"""memunlearn: memorization-aware machine unlearning."""
__version__ = "0.1.0"
