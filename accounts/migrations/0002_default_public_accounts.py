from django.db import migrations

DEFAULTS = {
    "ci_bot": ("CI bot", "Runs builds and tests; mention it to ask for one."),
    "email_bot": ("Email bot", "Relays mail notifications."),
    "notification_bot": ("Notification bot", "General notifications."),
    "system_bot": ("System bot", "Messages from Bridge itself and its operators."),
}


def create_defaults(apps, schema_editor):
    PublicAccount = apps.get_model("accounts", "PublicAccount")
    for handle, (display_name, description) in DEFAULTS.items():
        PublicAccount.objects.get_or_create(
            handle=handle,
            defaults={"display_name": display_name, "description": description},
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
