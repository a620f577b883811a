"""A small swappable SMS backend, in the spirit of Django's email backends.

settings.SMS_BACKEND names the class (dotted path):
- notifications.sms.ConsoleSmsBackend  writes messages to stdout (the default, for development)
- notifications.sms.LocmemSmsBackend   keeps them in `notifications.sms.outbox` (tests)
A gateway backend subclasses BaseSmsBackend and implements `send_messages`; it is only ever called
from a Celery task after commit, never while a database lock is held.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

outbox: list[SmsMessage] = []
_outbox_lock = threading.Lock()


@dataclass(frozen=True)
class SmsMessage:
    to: str  # E.164, e.g. +33612345678
    body: str
    sender: str = ""


class BaseSmsBackend:
    def __init__(self, fail_silently: bool = False, **kwargs):
        self.fail_silently = fail_silently

    def send_messages(self, messages: list[SmsMessage]) -> int:
        """Send the messages; return how many were sent. Raise OSError on a transport failure
        (the calling task retries with back-off)."""
        raise NotImplementedError


class ConsoleSmsBackend(BaseSmsBackend):
    def __init__(self, *args, stream=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stream = stream or sys.stdout

    def send_messages(self, messages: list[SmsMessage]) -> int:
        for message in messages:
            self.stream.write(f"SMS to {message.to}: {message.body}\n")
        self.stream.flush()
        return len(messages)


class LocmemSmsBackend(BaseSmsBackend):
    def send_messages(self, messages: list[SmsMessage]) -> int:
        with _outbox_lock:
            outbox.extend(messages)
        return len(messages)


def get_sms_backend(path: str | None = None, **kwargs) -> BaseSmsBackend:
    backend = path or getattr(settings, "SMS_BACKEND", "notifications.sms.ConsoleSmsBackend")
    return import_string(backend)(**kwargs)


def send_sms(to: str, body: str, *, backend: BaseSmsBackend | None = None) -> int:
    sender = getattr(settings, "SMS_SENDER", "")
    return (backend or get_sms_backend()).send_messages(
        [SmsMessage(to=to, body=body, sender=sender)]
    )
