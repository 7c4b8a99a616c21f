"""Policy: from a comment's scores to a decision, kept apart from how the scores are made.

Per label a review threshold (at or above it a person looks) and an optional reject threshold
(off by default: people decide). A pre-moderated article sends everything to review.
"""

from dataclasses import dataclass, field

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
