"""Palabre: moderation of reader comments for French-language news sites."""

from .registry import PROJECT_ROOT, Registry, signing_key


def load_scorer(models_dir=None, version=None):
    """A scorer for a model version (the active one by default) from a verified registry."""
    return Registry(models_dir).load(version)


def create_app(test_config=None):
    """The web app: defaults, then the environment, then test overrides."""
    import os
    from datetime import timedelta

    from flask import Flask

    from . import cli, web
    from .admin import views as admin_views
    from .api import views as api_views
    from .auth import views as auth_views
    from .comments import views as comment_views
    from .database import default_url
    from .health import views as health_views
    from .integrations import coral as coral_integration
    from .integrations import perspective as perspective_integration
    from .queue import views as queue_views

    app = Flask(__name__, instance_path=str(PROJECT_ROOT / "instance"))
    app.config.from_mapping(
        SECRET_KEY=signing_key(),
        MODELS_DIR=None,
        MODEL_CHECK_SECONDS=2.0,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("MODERATION_SECURE_COOKIES") == "1",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_DEFAULT_LOCALE="fr",
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        API_RATE_PER_SECOND=float(os.environ.get("MODERATION_API_RATE", "300")),
        API_RATE_BURST=float(os.environ.get("MODERATION_API_BURST", "600")),
    )
    if test_config:
        app.config.update(test_config)
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = default_url()
    web.init_app(app)
    for module in (auth_views, queue_views, comment_views, admin_views, health_views, api_views, coral_integration,
                   perspective_integration):
        app.register_blueprint(module.blueprint)
    app.register_blueprint(api_views.docs)
    for name, command in cli.main.commands.items():
        app.cli.add_command(command, name)
    return app
