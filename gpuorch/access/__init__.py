"""Who may call the API and how much: API keys, the per-key submission rate limit, the GPU backlog limit."""
