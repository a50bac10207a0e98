from django.apps import AppConfig


class SchoolConfig(AppConfig):
    name = "school"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Every committed save or delete sends a signed purge to cachegate (after the commit,
        # before the request that made it returns). The resource names are the routes'
        # `resource` in cachegate.toml.
        from cachegate_signals import connect_model

        from .models import Department, Faculty

        connect_model(Department, "department")
        # A faculty change also purges the "department" tag, as the faculty routes'
        # `invalidates` do for writes through the proxy.
        connect_model(Faculty, "faculty", extra_tags=["department"])
