"""The GraphQL API: one package per feature; resolvers parse, call a service, convert."""
