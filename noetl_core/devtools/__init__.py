"""Local services for examples and tests: a demo HTTP API and a throwaway PostgreSQL."""
