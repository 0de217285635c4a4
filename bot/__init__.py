"""triagebot: turns public complaints on social media into fixes."""

__version__ = "0.1.0"
