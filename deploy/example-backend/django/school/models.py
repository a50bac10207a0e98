from django.conf import settings
from django.db import models


class Organization(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self):
        return self.name


class Profile(models.Model):
    """The tenant of a user."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="members")


class Department(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="departments")
    name = models.CharField(max_length=100)
    budget = models.IntegerField(default=0)
    # Incremented by every update, in the same statement (see views.py).
    version = models.IntegerField(default=1)

    class Meta:
        ordering = ["id"]


class Faculty(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="faculty")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="faculty")
    name = models.CharField(max_length=100)
    title = models.CharField(max_length=100, blank=True)
    version = models.IntegerField(default=1)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "faculty"
