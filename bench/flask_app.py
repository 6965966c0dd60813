"""The seed's stack, as a benchmark peer: Flask + python3-twilio.

Validates X-Twilio-Signature with Twilio's RequestValidator against the same
public URL twhookd is configured with, checks AccountSid, looks the sender up
in a dict loaded from the users CSV and answers TwiML with a reset link whose
token is an HMAC of the MessageSid (like twhookd's, but nothing is stored).

Configured by the environment (bench/run sets it):
  BENCH_AUTH_TOKEN, BENCH_ACCOUNT_SID, BENCH_PUBLIC_URL, BENCH_USERS_CSV

Served by gunicorn over TLS: gunicorn --worker-class gthread ... flask_app:app
"""

import base64
import hashlib
import hmac
import os
import secrets

from flask import Flask, Response, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

AUTH_TOKEN = os.environ["BENCH_AUTH_TOKEN"]
ACCOUNT_SID = os.environ["BENCH_ACCOUNT_SID"]
PUBLIC_URL = os.environ["BENCH_PUBLIC_URL"].rstrip("/")
SERVER_KEY = secrets.token_bytes(32)
LINK = "https://example.com/reset?token={token}"

USERS = {}
with open(os.environ["BENCH_USERS_CSV"]) as f:
    for line in f:
        phone, _, user = line.strip().partition(",")
        if phone.startswith("+"):
            USERS[phone] = user

validator = RequestValidator(AUTH_TOKEN)
app = Flask(__name__)


def twiml(text=None):
    r = MessagingResponse()
    if text is not None:
        r.message(text)
    return Response(str(r), mimetype="application/xml")


@app.get("/healthz")
def healthz():
    return "ok\n"


@app.post("/sms/reset")
def sms_reset():
    form = request.form.to_dict()
    url = PUBLIC_URL + request.full_path.rstrip("?")
    if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
        return Response(status=403)
    if form.get("AccountSid") != ACCOUNT_SID:
        return Response(status=403)
    sid = form.get("MessageSid", "")
    if not (sid.startswith("SM") and len(sid) == 34):
        return Response(status=400)
    user = USERS.get(form.get("From", ""))
    if user is None:
        return twiml()
    mac = hmac.new(SERVER_KEY, sid.encode(), hashlib.sha256).digest()
    token = base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")
    return twiml("Reset your password: " + LINK.format(token=token))
