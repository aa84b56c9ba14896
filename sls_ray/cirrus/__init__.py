"""Cirrus (SoCC'19) on the simulated cloud: end-to-end ML workflows on functions.

``data``: Criteo- and Netflix-shaped datasets, libsvm, feature hashing, ~50,000-row objects.
``preprocess``: normalisation as two fan-out phases. ``ps``: the parameter server on a VM.
``iterator``: the prefetching S3 iterator. ``training``: backend, workers, model math.
``baselines``: PyWren-style training. ``experiment``: the ``cirrus`` experiment kind.
``workflow``: the user-facing API (LogisticRegression, CollaborativeFiltering, GridSearch).
Results: results/README.md, Cirrus section.
"""
