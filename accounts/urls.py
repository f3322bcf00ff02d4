from django.urls import path

from accounts import views

urlpatterns = [
    path("api/tokens", views.TokenView.as_view(), name="tokens"),
]
