"""A middleware Bridge does not know (tests/test_loop_views.py)."""

from django.utils.deprecation import MiddlewareMixin


class Tagging(MiddlewareMixin):
    def process_response(self, request, response):
        response["X-Tagged"] = "yes"
        return response
