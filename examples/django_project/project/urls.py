"""The example's routes."""

from accounts import views
from django.urls import path

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.log_in, name="login"),
    path("logout/", views.log_out, name="logout"),
    path("visits/", views.visits, name="visits"),
]
