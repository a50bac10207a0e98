"""Seeds the example data: 3 organizations, 4 users with fixed tokens, departments and faculty."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from school.models import Department, Faculty, Organization, Profile

USERS = [("alice", 1), ("dave", 1), ("bob", 2), ("carol", 3)]
TITLES = ["Professor", "Lecturer", "Assistant"]


class Command(BaseCommand):
    help = "Fills the database with the example data (password = username, token = first letter x 40)."

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="delete existing example data first")

    @transaction.atomic
    def handle(self, *args, reset=False, **options):
        User = get_user_model()
        if reset:
            Faculty.objects.all().delete()
            Department.objects.all().delete()
            Token.objects.all().delete()
            User.objects.all().delete()
            Organization.objects.all().delete()
        elif Organization.objects.exists():
            self.stdout.write("already seeded (use --reset to start again)")
            return
        orgs = [Organization.objects.create(id=n, name="Org %d" % n) for n in (1, 2, 3)]
        for username, org in USERS:
            user = User.objects.create_user(username=username, password=username)
            Profile.objects.create(user=user, organization=orgs[org - 1])
            Token.objects.create(user=user, key=username[0] * 40)
        # Seeding is not a change clients could have cached: bulk_create sends no signals.
        for org in orgs:
            departments = Department.objects.bulk_create(
                Department(organization=org, name="Department %d-%02d" % (org.id, i), budget=1000 * i)
                for i in range(1, 13)
            )
            Faculty.objects.bulk_create(
                Faculty(
                    organization=org,
                    department=departments[i % 12],
                    name="Faculty %d-%02d" % (org.id, i),
                    title=TITLES[i % 3],
                )
                for i in range(1, 37)
            )
        self.stdout.write(
            "seeded %d organizations, %d users, %d departments, %d faculty"
            % (Organization.objects.count(), User.objects.count(), Department.objects.count(), Faculty.objects.count())
        )
