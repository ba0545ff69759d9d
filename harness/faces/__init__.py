"""The two faces: the command line (``python -m harness``) and the pytest plugin.

Each only parses what a person gave, runs experiments through the runner, and
hands results to the report. Nothing in the harness imports a face.
"""
