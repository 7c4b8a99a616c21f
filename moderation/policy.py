"""Policy: from a comment's scores to a decision, kept apart from how the scores are made.

Per label a review threshold (at or above it a person looks) and an optional reject threshold
(off by default: people decide). A pre-moderated article sends everything to review. A
moderator's decision stands until a moderator changes it, whatever the comment's author edits.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

PUBLISH = "publish"
REVIEW = "review"
REJECT = "reject"


@dataclass(frozen=True)
class LabelThresholds:
    """When one label's score asks for a look, and (optionally) for rejection."""

    review: float
    reject: float | None = None

    def __post_init__(self):
        if not 0.0 <= self.review <= 1.0:
            raise ValueError(f"review threshold must be between 0 and 1, not {self.review}")
        if self.reject is not None and not self.review <= self.reject <= 1.0:
            raise ValueError(f"reject threshold must be between the review threshold and 1, not {self.reject}")


@dataclass(frozen=True)
class Policy:
    """Thresholds for every label."""

    thresholds: dict[str, LabelThresholds] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> "Policy":
        """Build from {"toxic": {"review": 0.4, "reject": null}, ...} as stored with a model."""
        return cls({label: LabelThresholds(values["review"], values.get("reject")) for label, values in data.items()})

    def to_dict(self) -> dict:
        """The JSON form stored with a model and shown to admins."""
        return {label: {"review": t.review, "reject": t.reject} for label, t in self.thresholds.items()}

    def labels(self, scores: dict[str, float]) -> list[str]:
        """Labels whose score is at or above their review threshold."""
        return [label for label, t in self.thresholds.items() if scores[label] >= t.review]

    def decide(self, scores: dict[str, float], premoderated: bool = False) -> str:
        """publish, review or reject for one comment's scores."""
        for label, t in self.thresholds.items():
            if t.reject is not None and scores[label] >= t.reject:
                return REJECT
        if premoderated or self.labels(scores):
            return REVIEW
        return PUBLISH


def moderator_decision_stands(moderator_decision: str, model_decision: str, review_rejected_edits: bool) -> bool:
    """Whether a moderator's decision (publish or reject) still holds after the author edited the comment.

    A rejection stands, so a removed comment cannot come back by being edited, unless the site
    asks to review such edits. An approval stands while the model would publish the new text;
    new text it would hold or reject goes back to a moderator rather than being decided by the model.
    """
    if moderator_decision == REJECT:
        return not review_rejected_edits
    return model_decision == PUBLISH


PREMODERATION_BONUS = 0.3
SCORE_PER_HOUR_WAITED = 0.02
_PRIORITY_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def priority(scores: dict[str, float], received_at: datetime, premoderated: bool = False) -> float:
    """Queue order, highest first: the higher score, plus 0.02 per hour waited, plus 0.3 on a pre-moderated article.

    Age enters as an offset on the arrival time, so the value never changes while a comment
    waits and the queue can be read in index order.
    """
    hours = (received_at - _PRIORITY_EPOCH).total_seconds() / 3600
    return max(scores.values()) - SCORE_PER_HOUR_WAITED * hours + (PREMODERATION_BONUS if premoderated else 0.0)


def in_sample(key: str, share: float) -> bool:
    """Whether a would-be-published comment goes to review as part of the QA sample.

    Drawn from a hash of the key (comment id and revision), so the same comment always gets
    the same answer and the share holds over any large enough stream.
    """
    draw = int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big") / 2**64
    return draw < share
