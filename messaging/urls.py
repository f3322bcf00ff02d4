from django.urls import path

from messaging import views

urlpatterns = [
    path("sse/push", views.PushView.as_view(), name="push"),
    path("sse/push/batch", views.PushBatchView.as_view(), name="push-batch"),
]
