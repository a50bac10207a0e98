from rest_framework import serializers

from .models import Department, Faculty


class DepartmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Department
        fields = ["id", "organization", "name", "budget", "version"]
        read_only_fields = ["organization", "version"]


class FacultySerializer(serializers.ModelSerializer):
    class Meta:
        model = Faculty
        fields = ["id", "organization", "department", "name", "title", "version"]
        read_only_fields = ["organization", "version"]

    def validate_department(self, department):
        # Only a department of the caller's own organization.
        if department.organization_id != self.context["request"].user.profile.organization_id:
            raise serializers.ValidationError("no such department")
        return department
