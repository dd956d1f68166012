"""The API's blueprints: service info and health, job submission, job look-up, and the GPU's cost."""
