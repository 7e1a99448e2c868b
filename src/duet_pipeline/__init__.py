"""DUET device-cloud collaborative recommendation as a Kedro project.

The library (``data``, ``features``, ``models``, ``training``, ``evaluation``) knows
nothing of Kedro; ``pipelines`` wires it to the catalog and parameters.
"""

__version__ = "0.1.0"
