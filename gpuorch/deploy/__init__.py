"""Deploying gpuorch on AWS from one command: its IAM documents, the CloudFormation stack and the release on it."""
