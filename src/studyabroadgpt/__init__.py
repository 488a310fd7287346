"""StudyAbroadGPT: a trustworthy study-abroad advising assistant toolkit."""
__version__ = "0.1.0"
