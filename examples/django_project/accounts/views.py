"""Log in and log out with ``django.contrib.auth``, on coatcheck sessions.

``login()`` calls ``request.session.cycle_key()``: coatcheck moves the session to a new id and
the old one stops working at once (a fixation attack's planted id is dead). ``logout()`` calls
``flush()``: the stored session is deleted and the cookie with it.
"""

from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.html import escape
from django.views.decorators.http import require_POST

PAGE = "<!doctype html><title>coatcheck + Django</title><p>{}</p>"
FORM = (
    '<form method="post" action="/login/">'
    '<input type="hidden" name="csrfmiddlewaretoken" value="{token}">'
    '<input name="username"> <input name="password" type="password">'
    "<button>Log in</button></form>"
)


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return HttpResponse(
            PAGE.format(
                f"Hello {escape(request.user.get_username())}. "
                '<form method="post" action="/logout/">'
                f'<input type="hidden" name="csrfmiddlewaretoken" value="{_csrf(request)}">'
                "<button>Log out</button></form>"
            )
        )
    return HttpResponse(PAGE.format(FORM.format(token=_csrf(request))))


@require_POST
def log_in(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request,
        username=request.POST.get("username", ""),
        password=request.POST.get("password", ""),
    )
    if user is None:
        return HttpResponse(PAGE.format("Wrong user name or password."), status=401)
    login(request, user)  # rotates the session id (cycle_key)
    return redirect("home")


@require_POST
def log_out(request: HttpRequest) -> HttpResponse:
    logout(request)  # deletes the stored session (flush)
    return redirect("home")


def visits(request: HttpRequest) -> HttpResponse:
    """A key of its own: in merge mode, concurrent requests that change other keys keep it."""
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse(PAGE.format(f"Visits: {request.session['visits']}"))


def _csrf(request: HttpRequest) -> str:
    from django.middleware.csrf import get_token

    return escape(get_token(request))
