"""Subscriptions: live topics over graphql-transport-ws and graphql-ws."""
