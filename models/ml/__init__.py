"""Machine-learned alpha models: labels from the lake, LightGBM trained walk-forward with
deterministic settings, a content-hashed artifact registry, and a strategy that trades exactly
one registered artifact (docs/models.md)."""
