"""The actor layer: definitions, the lifecycle loop, and everything ``c`` offers."""
