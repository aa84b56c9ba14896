"""LambdaML (SIGMOD'21) on the simulated cloud: distributed training through storage channels.

``models``, ``datasets``, ``algorithms``: the per-worker math (no communication).
``channels``: the paper's channel interface over any key-value service.
``protocols``: synchronous collectives, the VM parameter server, the asynchronous shared model.
``job``: trigger, executors and parameter server as functions. ``analytical``: the paper's cost
model. ``experiment``: the ``lambdaml`` experiment kind. Results: results/README.md.
"""
