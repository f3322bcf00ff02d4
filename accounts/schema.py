"""How the OpenAPI schema (/api/schema) describes Bridge's authentication."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: `Authorization: Bearer brk_…` (SPEC §4).",
        }


class OpenModeScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.OpenModeAuthentication"
    name = "openMode"
    optional = True

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "BRIDGE_AUTH_MODE=open (development): no key needed.",
        }


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.SessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


class UserTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.UserTokenAuthentication"
    name = "userToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A user's WebSocket token, as POST /api/tokens mints it "
            "(SPEC §4, §9): `Authorization: Bearer <token>`.",
        }
