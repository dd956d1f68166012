"""Job records: the user's truth about each job, kept in DynamoDB."""
