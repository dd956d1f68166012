"""The API's blueprints: service info and health, job submission, and job look-up."""
