"""The API docs pages (Swagger UI, ReDoc), served from the project's own static files.

The pages also carry a Content-Security-Policy that keeps the browser on this origin: ReDoc's
bundle, for one, shows a logo from its vendor's CDN, which the policy stops before it is fetched.
"""

from functools import wraps

from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

SAME_ORIGIN_ONLY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
                    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


def same_origin_only(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = SAME_ORIGIN_ONLY
        return response

    return wrapped


swagger_ui = same_origin_only(SpectacularSwaggerView.as_view(url_name="schema"))
redoc = same_origin_only(SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"))
