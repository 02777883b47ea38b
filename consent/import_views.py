"""The contacts import page of the workspace (staff login; admins only, as `POST contacts/import/`):
upload a CSV, read the preview (row-level errors, what each row will do, the summary), then import."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import imports
from .models import ApiRole, actor_for
from .permissions import user_roles

PREVIEW_ROWS = 200


class UploadForm(forms.Form):
    file = forms.FileField(required=False, help_text="CSV, UTF-8, one header row; at most 10,000 rows and 5 MB.")
    csv_text = forms.CharField(required=False, widget=forms.HiddenInput, max_length=imports.MAX_BYTES)
    commit = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > imports.MAX_BYTES:
                raise forms.ValidationError(f"At most {imports.MAX_BYTES // (1024 * 1024)} MB.")
            try:
                data["csv_text"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text (save it as “CSV UTF-8”).") from None
        if not data.get("csv_text"):
            raise forms.ValidationError("Choose a CSV file.")
        return data


def import_page(request: HttpRequest) -> HttpResponse:
    context = {**admin.site.each_context(request), "title": "Import contacts",
               "preview_rows": PREVIEW_ROWS}
    if ApiRole.ADMIN not in user_roles(request.user):
        context["forbidden"] = True
        return render(request, "consent/contacts_import.html", context, status=403)
    if request.method != "POST":
        context["form"] = UploadForm()
        return render(request, "consent/contacts_import.html", context)
    form = UploadForm(request.POST, request.FILES)
    context["form"] = form
    if not form.is_valid():
        return render(request, "consent/contacts_import.html", context, status=400)
    commit = bool(form.cleaned_data.get("commit"))
    try:
        summary = imports.contacts_import(data=form.cleaned_data["csv_text"], actor=actor_for(request.user), commit=commit)
    except imports.ImportFileError as exc:
        context["file_error"] = str(exc)
        return render(request, "consent/contacts_import.html", context, status=400)
    context.update(summary=summary, results=summary["results"][:PREVIEW_ROWS],
                   confirm_form=None if commit else UploadForm(initial={"csv_text": form.cleaned_data["csv_text"],
                                                                        "commit": True}))
    return render(request, "consent/contacts_import.html", context)
