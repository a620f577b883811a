from django.core.management.base import BaseCommand

from demo import data as demo


class Command(BaseCommand):
    help = "Print where the API docs, the admin and the demo credentials are."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, host: str, port: str, **options):
        base = f"http://{host}:{port}"
        username, password = demo.DEMO_STAFF
        web_key = demo.DEMO_KEYS["demo-web-storefront"][0]
        pos_key = demo.DEMO_KEYS["demo-pos"][0]
        back_office_key = demo.DEMO_KEYS["demo-back-office"][0]
        associate = demo.store_staff_username(demo.DEMO_BOARD_STORE, "associate")
        store_password = demo.DEMO_STORE_PASSWORD
        self.stdout.write(f"""
==============================================================================
 Omnistock is starting on {base}
   API docs (Swagger UI) : {base}/api/docs/
   OpenAPI schema        : {base}/api/schema/
   Admin (back office)   : {base}/admin/   login: {username} / {password}
   Store staff           : {associate} / {store_password} (and .manager; every store)
   Health                : {base}/healthz  (database, broker, when the schedule last ran)
   Scheduler             : a Celery worker + beat beside the web server (filesystem broker,
                           var/broker): holds expire, reminders and webhooks go out by themselves
   Demo API keys         : web storefront  Authorization: Api-Key {web_key}
                           store till      Authorization: Api-Key {pos_key}
                           back office     Authorization: Api-Key {back_office_key}
                           (every scope: CRM and call-centre tools, merges, refunds, webhooks)
 Try:  curl -H "Authorization: Api-Key {web_key}" \\
         "{base}/api/v1/availability/near/?sku=TEE-NVY-M&lat=48.8566&lon=2.3522"
==============================================================================
""")
