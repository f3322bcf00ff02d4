# Bridge: one daphne process per container. docker-compose.yml runs two of them
# behind nginx; see docs/deployment.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=bridge_project.settings

WORKDIR /app
COPY . /app

# Installs the dependencies from pyproject.toml. The code itself is imported
# from /app (manage.py's directory, and daphne's working directory, come first
# on sys.path), so BASE_DIR, and with it STATIC_ROOT, is /app.
RUN pip install .

# settings.py refuses to load without SECRET_KEY when DEBUG is off; this
# throwaway value exists only for this one command and is not kept in the
# image. collectstatic neither opens the database nor connects to Redis.
RUN SECRET_KEY=collectstatic-only DEBUG=0 BRIDGE_AUTH_MODE=token \
    python manage.py collectstatic --noinput -v 0

RUN useradd --system --no-create-home --shell /usr/sbin/nologin bridge
USER bridge

EXPOSE 8000

# The command line of bridge_project/serve.py's daphne_command(): daphne on
# uvloop (bridge_project/daphne_uvloop.py, daphne's own arguments); daphne's own
# frame ceiling is max(1 MiB, 2 x BRIDGE_MAX_FRAME_BYTES), so that Bridge itself
# closes oversized frames with 1009 (raise it if BRIDGE_MAX_FRAME_BYTES goes above
# 524288); handshakes may take up to 30 s under a burst of connects.
CMD ["python", "-m", "bridge_project.daphne_uvloop", "-b", "0.0.0.0", "-p", "8000", "--websocket-max-message-size", "1048576", "--websocket_connect_timeout", "30", "bridge_project.asgi:application"]
