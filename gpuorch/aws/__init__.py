"""AWS access: boto3 clients built from the settings, and the one copy of each AWS primitive gpuorch uses."""
