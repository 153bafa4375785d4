"""Print the SDL that `schema.graphql` must equal (`make schema`)."""

from __future__ import annotations

from strawberry.printer import print_schema

from server.graphql.schema import schema


def sdl() -> str:
    return print_schema(schema) + "\n"


if __name__ == "__main__":
    print(sdl(), end="")
