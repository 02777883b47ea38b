"""The opt-in form: a phone number, a channel, and an unticked consent box."""

from django import forms
from django.conf import settings

from consent.models import Channel
from consent.phones import InvalidPhoneNumber, parse_phone


class OptinForm(forms.Form):
    """Validates what the person typed; the consent services decide the rest."""

    phone = forms.CharField(
        label="Mobile number",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel", "placeholder": "+1 415 555 0123"}),
        help_text="With the country code, e.g. +1 415 555 0123 or +33 6 12 34 56 78.",
    )
    channel = forms.ChoiceField(label="Send messages by", choices=Channel.choices, initial=Channel.SMS,
                                widget=forms.RadioSelect)
    consent = forms.BooleanField(required=True, error_messages={"required": "Tick the box to agree to receive these messages."})
    text_version = forms.IntegerField(widget=forms.HiddenInput)
    # A field people never see: bots that fill every field reveal themselves.
    website = forms.CharField(required=False, widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}))

    def clean_phone(self):
        try:
            return parse_phone(self.cleaned_data["phone"], default_region=settings.DEFAULT_PHONE_REGION)
        except InvalidPhoneNumber as exc:
            raise forms.ValidationError(str(exc)) from None
