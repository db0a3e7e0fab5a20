"""The GraphQL edge (SPEC §3): the schema, the view that serves it, and the context its
resolvers read. Who may call is a Strawberry permission on every field
(`api.graphql.context`), checked before the resolver; the document's cost is limited
before anything runs (`api.graphql.limits`)."""

from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.graphql.view import GraphQLApp

__all__ = ["Context", "GraphQLApp", "build_schema"]
