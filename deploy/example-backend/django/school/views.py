from django.contrib.auth import authenticate, login, logout
from django.db import transaction
from django.db.models import F
from django.shortcuts import get_object_or_404
from rest_framework import status, viewsets
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from .models import Department, Faculty
from .serializers import DepartmentSerializer, FacultySerializer


def org_id(request):
    return request.user.profile.organization_id


@api_view(["GET"])
@permission_classes([IsAuthenticated])
def me(request):
    """Who is signed in: cachegate's [auth.introspect] reads org_id (tenant) and id (user)."""
    user = request.user
    return Response({"id": user.id, "username": user.username, "org_id": str(org_id(request))})


@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
def session_login(request):
    """Opens a Django session (the sessionid cookie) for username and password."""
    user = authenticate(
        request, username=request.data.get("username"), password=request.data.get("password")
    )
    if user is None:
        return Response({"detail": "invalid credentials"}, status=status.HTTP_401_UNAUTHORIZED)
    login(request, user)
    return Response({"id": user.id, "username": user.username, "org_id": str(user.profile.organization_id)})


@api_view(["POST"])
@permission_classes([IsAuthenticated])
def session_logout(request):
    logout(request)
    return Response(status=status.HTTP_204_NO_CONTENT)


class TenantViewSet(viewsets.ModelViewSet):
    """Every queryset is the caller's organization's: another organization's object is a 404."""

    model = None
    search_fields = ["name"]
    ordering_fields = ["id", "name"]
    ordering = ["id"]

    def get_queryset(self):
        return self.model.objects.filter(organization_id=org_id(self.request))

    def perform_create(self, serializer):
        with transaction.atomic():
            serializer.save(organization_id=org_id(self.request), version=1)

    def perform_update(self, serializer):
        # version + 1 in the UPDATE itself, and read back inside the same transaction, so
        # the answer carries this write's version, not a later concurrent one.
        with transaction.atomic():
            instance = serializer.save(version=F("version") + 1)
            instance.refresh_from_db()


class DepartmentViewSet(TenantViewSet):
    model = Department
    serializer_class = DepartmentSerializer


class FacultyViewSet(TenantViewSet):
    model = Faculty
    serializer_class = FacultySerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        department = self.request.query_params.get("department")
        if department:
            if not department.isdigit():
                return queryset.none()
            queryset = queryset.filter(department_id=int(department))
        return queryset


def _bump(request, model, pk):
    # Stands for a write made outside the proxy (the admin, a job): the model's post_save
    # signal queues the purge with transaction.on_commit, so it is sent when this atomic block
    # commits, before the response is returned.
    with transaction.atomic():
        obj = get_object_or_404(model.objects.select_for_update(), pk=pk, organization_id=org_id(request))
        obj.version = F("version") + 1
        obj.save(update_fields=["version"])
        obj.refresh_from_db(fields=["version"])
    return Response({"id": obj.pk, "version": obj.version})


@api_view(["POST"])
@permission_classes([IsAuthenticated])
def bump_department(request, pk):
    return _bump(request, Department, pk)


@api_view(["POST"])
@permission_classes([IsAuthenticated])
def bump_faculty(request, pk):
    return _bump(request, Faculty, pk)
