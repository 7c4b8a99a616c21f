"""What the web pages share about decisions: form actions and refusals in the moderator's language."""

from flask_babel import format_datetime, format_time
from flask_babel import gettext as _

from ..service import AlreadyDecided, ClaimedByOther, Edited, UnknownComment
from ..validation import InputError
from .models import PUBLISHED, REJECTED

ACTIONS = {"approve": PUBLISHED, "reject": REJECTED}


def status_for(action: str) -> str:
    """The status an approve or reject button gives."""
    return ACTIONS[action]


def refusal_message(error: Exception, comment_id: int) -> str:
    """Why a decision was not recorded, translated, naming the comment."""
    if isinstance(error, AlreadyDecided):
        when = format_datetime(error.at, "short")
        if error.status == PUBLISHED:
            return _("Comment #%(id)d was already published by %(who)s at %(when)s; nothing was changed.",
                     id=comment_id, who=error.moderator, when=when)
        return _("Comment #%(id)d was already rejected by %(who)s at %(when)s; nothing was changed.",
                 id=comment_id, who=error.moderator, when=when)
    if isinstance(error, ClaimedByOther):
        return _("Comment #%(id)d is open by %(who)s until %(time)s; it is theirs until then.",
                 id=comment_id, who=error.moderator, time=format_time(error.until, "HH:mm"))
    if isinstance(error, Edited):
        return _("Comment #%(id)d was edited since you opened it; read the new text before deciding.", id=comment_id)
    if isinstance(error, UnknownComment):
        return _("There is no comment #%(id)d.", id=comment_id)
    if isinstance(error, InputError) and error.field == "revision":
        return _("Comment #%(id)d: the form is damaged (unreadable revision); reload the page.", id=comment_id)
    if isinstance(error, InputError) and error.field == "reason":
        return _("Comment #%(id)d: choose a reason to reject it (1 toxic, 2 off-topic, 3 spam, 4 other).", id=comment_id)
    return _("Comment #%(id)d: choose approve or reject.", id=comment_id)
