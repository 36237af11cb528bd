"""Flask-Login on coatcheck's sessions: login_user, current_user across requests, logout_user;
the id rotated at log in and dead after log out."""

from __future__ import annotations

import flask
import flask_login
import pytest

from tests.contrib.flask.conftest import AppFactory, cookie


class User(flask_login.UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


@pytest.fixture
def app(make_app: AppFactory, store: str) -> flask.Flask:
    app = make_app(store)
    manager = flask_login.LoginManager(app)
    manager.user_loader(lambda user_id: User(user_id) if user_id in ("ada", "bob") else None)

    @app.post("/login/<name>")
    def login(name: str) -> str:
        flask_login.login_user(User(name), remember=flask.request.args.get("remember") == "1")
        flask.session.regenerate()  # type: ignore[attr-defined]
        return "in"

    @app.get("/me")
    def me() -> str:
        user = flask_login.current_user
        return user.id if user.is_authenticated else "anonymous"

    @app.get("/private")
    @flask_login.login_required
    def private() -> str:
        return "secret"

    @app.post("/logout")
    def logout() -> str:
        flask_login.logout_user()
        return "out"

    return app


def test_login_current_user_logout(app: flask.Flask) -> None:
    client = app.test_client()
    assert client.get("/me").text == "anonymous"
    assert client.get("/private").status_code == 401
    before = client.get_cookie("session")
    response = client.post("/login/ada")
    ticket = cookie(response)
    assert ticket and (before is None or ticket != before.value)
    assert client.get("/me").text == "ada"
    assert client.get("/private").text == "secret"
    with client.session_transaction() as session:
        assert session["_user_id"] == "ada" and session["_fresh"] is True
    assert client.post("/logout").text == "out"
    assert client.get("/me").text == "anonymous"
    # The logged-in ticket is dead, even if someone kept it.
    replay = app.test_client()
    replay.set_cookie("session", ticket)
    assert replay.get("/me").text == "anonymous"


def test_login_rotates_an_existing_anonymous_session(app: flask.Flask) -> None:
    client = app.test_client()
    with client.session_transaction() as session:
        session["cart"] = ["book"]
    anonymous = client.get_cookie("session")
    assert anonymous is not None
    rotated = cookie(client.post("/login/bob"))
    assert rotated and rotated != anonymous.value
    with client.session_transaction() as session:
        assert session["cart"] == ["book"] and session["_user_id"] == "bob"
    fixated = app.test_client()
    fixated.set_cookie("session", anonymous.value)
    assert fixated.get("/me").text == "anonymous"


def test_two_users_do_not_see_each_other(app: flask.Flask) -> None:
    ada, bob = app.test_client(), app.test_client()
    ada.post("/login/ada")
    bob.post("/login/bob")
    assert (ada.get("/me").text, bob.get("/me").text) == ("ada", "bob")
    ada.post("/logout")
    assert (ada.get("/me").text, bob.get("/me").text) == ("anonymous", "bob")
