"""API calls: concurrency, retries and rate limits (runner), the spending limit (budget), the price table (pricing)."""
