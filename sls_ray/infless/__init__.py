"""INFless (ASPLOS'22): native serverless inference with built-in non-uniform batching.

Modules, each one idea: ``models`` (the five models as operator graphs in plain torch),
``cop`` (combined operator profiling and the GPU-share scaling model), ``cluster`` (slots,
instances, placement, fragments), ``streams`` (load patterns and the Azure Functions trace),
``scheduler`` (dispatch band, greedy placement, the baselines' policies), ``serving`` (the
request-level simulation), ``keepalive`` (LSTH and HHP), ``experiment`` (the registered kind).
"""
