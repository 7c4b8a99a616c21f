"""The WSGI app (`gunicorn app:app`); `python app.py` also prepares a first run and serves it."""

from moderation import create_app

app = create_app()

if __name__ == "__main__":
    from moderation.startup import run

    run(app)
