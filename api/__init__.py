"""The thin edge: the ASGI app, the GraphQL schema, the OAuth callback, health, and the
operators' command-line tool. Records intent, enqueues, answers; never calls a provider."""
