"""Request and response bodies, kept apart from the ORM models: Base (shared fields), Create, Update, Public."""
