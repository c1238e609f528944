"""Training the readers and the summarizer, and tuning their settings for a set of weights.

Nothing under models/ imports from here: models/ holds what a user of the service loads.
"""
