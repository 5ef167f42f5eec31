"""Per-user preferences of the admin: the language a person reads Tagwerk in."""
