"""The ``trunkline`` command: the only place that prints or exits."""
