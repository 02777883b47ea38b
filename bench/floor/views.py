"""The floor's one view: verify X-Twilio-Signature as the service does, one INSERT, an empty TwiML."""

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse

from consent.signatures import verify_twilio_signature

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
SQL = f"INSERT INTO {settings.TABLE} (sid, sender, body) VALUES (%s, %s, %s) ON CONFLICT (sid) DO NOTHING"


def inbound(request):
    form = request.POST
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    if not verify_twilio_signature(settings.TWILIO_AUTH_TOKEN, url, form, request.headers.get("X-Twilio-Signature")):
        response = JsonResponse({"detail": "Invalid X-Twilio-Signature."}, status=403)
        response["Content-Length"] = len(response.content)
        return response
    with connection.cursor() as cursor:
        cursor.execute(SQL, [form.get("MessageSid", ""), form.get("From", ""), form.get("Body", "")])
    response = HttpResponse(EMPTY_TWIML, content_type="text/xml; charset=utf-8")
    response["Content-Length"] = len(response.content)  # CommonMiddleware's one job here: keep-alive framing
    return response
