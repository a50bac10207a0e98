from django.urls import include, path
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("departments", views.DepartmentViewSet, basename="department")
router.register("faculty", views.FacultyViewSet, basename="faculty")

urlpatterns = [
    path("auth/me/", views.me),
    path("auth/login/", views.session_login),
    path("auth/logout/", views.session_logout),
    path("direct/departments/<int:pk>/bump/", views.bump_department),
    path("direct/faculty/<int:pk>/bump/", views.bump_faculty),
    path("", include(router.urls)),
]
