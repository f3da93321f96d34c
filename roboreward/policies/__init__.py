"""Training with stable-baselines3, checkpoints, and evaluation of trained runs.

``train(config)`` / ``resume(run_dir)`` in :mod:`roboreward.policies.train`,
``evaluate(run_dir)`` in :mod:`roboreward.policies.evaluate`.
"""

import importlib

# Features extractors a config can name (``algo.features``); imported when a run builds its policy.
FEATURE_EXTRACTORS: dict[str, str] = {"crowd_attention": "roboreward.policies.crowd:CrowdAttentionExtractor"}


def features_extractor(name: str):
    """The features extractor class ``algo.features`` names."""
    module, attribute = FEATURE_EXTRACTORS[name].split(":")
    return getattr(importlib.import_module(module), attribute)
