"""Query-string filters answer a bad value as every other input does: 400 with {field: reason}."""

from rest_framework.exceptions import ValidationError


def choice_errors(choices) -> dict:
    """The error a ChoiceFilter gives for a value outside `choices` (a Django TextChoices class)."""
    return {"invalid_choice": f"One of {', '.join(choices.values)}."}


def filter_or_400(filterset_class, request, queryset):
    """`queryset` narrowed by `filterset_class` from the request's query string, or a 400 naming each bad field."""
    filterset = filterset_class(request.query_params, queryset=queryset, request=request)
    if not filterset.is_valid():
        raise ValidationError({name: " ".join(messages) for name, messages in filterset.errors.items()})
    return filterset.qs
