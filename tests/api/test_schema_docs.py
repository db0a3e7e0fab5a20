"""The schema documents itself: every type, field, argument, input field and enum value
the API defines carries a description, so GraphiQL's docs explorer and `schema.graphql`
tell a client developer what each means (units, which scope fills it, which errors a
mutation answers). GraphQL's own introspection types and directives are graphql-core's,
described there."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    specified_directives,
)

from api.graphql import build_schema
from settings import Settings


def undescribed(schema: GraphQLSchema) -> list[str]:
    """Every element of `schema` without a description, by its coordinate
    (`Type`, `Type.field`, `Type.field(arg:)`, `Enum.VALUE`, `@directive(arg:)`)."""
    missing: list[str] = []

    def check(coordinate: str, description: str | None) -> None:
        if not (description or "").strip():
            missing.append(coordinate)

    types: list[GraphQLNamedType] = [
        t for name, t in schema.type_map.items() if not name.startswith("__")
    ]
    for named in types:
        check(named.name, named.description)
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in named.fields.items():
                check(f"{named.name}.{field_name}", field.description)
                for arg_name, arg in field.args.items():
                    check(f"{named.name}.{field_name}({arg_name}:)", arg.description)
        elif isinstance(named, GraphQLInputObjectType):
            for field_name, input_field in named.fields.items():
                check(f"{named.name}.{field_name}", input_field.description)
        elif isinstance(named, GraphQLEnumType):
            for value_name, value in named.values.items():
                check(f"{named.name}.{value_name}", value.description)
    for directive in schema.directives:
        if directive in specified_directives:
            continue
        check(f"@{directive.name}", directive.description)
        for arg_name, arg in directive.args.items():
            check(f"@{directive.name}({arg_name}:)", arg.description)
    return missing


def test_every_type_field_argument_and_enum_value_is_described(settings: Settings) -> None:
    schema = build_schema(settings)._schema
    missing = undescribed(schema)
    assert missing == [], (
        f"{len(missing)} elements of the schema have no description (add `description=`"
        " to strawberry.type/field/argument/input, or the enum's table in"
        f" api/graphql/enums.py): {', '.join(missing)}"
    )


def test_the_walk_finds_what_lacks_a_description(settings: Settings) -> None:
    """The check can fail: an element stripped of its description is named."""
    schema = build_schema(settings)._schema
    vehicle = schema.type_map["ConnectedVehicle"]
    status = schema.type_map["ConnectedVehicleStatus"]
    query = schema.type_map["AllQueries"]
    assert isinstance(vehicle, GraphQLObjectType)
    assert isinstance(status, GraphQLEnumType)
    assert isinstance(query, GraphQLObjectType)
    vehicle.fields["vin"].description = None
    status.values["failed"].description = ""
    query.fields["connectedVehicle"].args["id"].description = None
    vehicle.description = None

    assert sorted(undescribed(schema)) == [
        "AllQueries.connectedVehicle(id:)",
        "ConnectedVehicle",
        "ConnectedVehicle.vin",
        "ConnectedVehicleStatus.failed",
    ]
