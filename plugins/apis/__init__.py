"""What the bundled API plugins share: frame encoding and the OpenAI-compatible connection.

Generators, scorers and evaluators that call an API use these helpers, so request building, error
translation and frame encoding exist once.
"""
