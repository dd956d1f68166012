"""AWS access: boto3 clients built from the settings, and the resources gpuorch needs."""
