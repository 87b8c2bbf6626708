"""Per-task prompts after LaMP's templates (Salemi et al., arXiv 2304.11406, Table 5;
official code ``LaMP/prompts/prompts.py``: ``create_classification_movies_prompt`` and
``create_classification_review_prompt``).

LaMP writes each retrieved profile entry as a short pattern sentence (movie tagging:
``the tag for the movie: "<description>" is "<tag>"``; rating: ``<score> is the score
for "<text>"``), joins them with ", and " and puts them before the task's input
question. Tagging and rating keep those patterns and questions (the rating question
names the data set's own scale); tag generation follows LaMP's generation pattern
(``"<title>" is the title for "<text>"``); the explanation prompt is tastemaker's,
grounded in the liked movies and the item's attributes. A firmer wording is used for
retries after an unusable reply.
"""

from __future__ import annotations

from collections.abc import Sequence

from tastemaker.errors import ConfigError
from tastemaker.llm.base import ChatMessage
from tastemaker.text.profiles import ProfileEntry
from tastemaker.text.tasks import Example, RatingScale, Task

JOIN = ", and "  # LaMP's separator between profile sentences


def _quoted(text: str) -> str:
    return text.replace('"', "'")


def profile_sentence(task: str, entry: ProfileEntry) -> str:
    """One retrieved entry as LaMP's pattern sentence for ``task``."""
    text, output = _quoted(entry.text), _quoted(entry.output)
    if task == "tagging":
        return f'the tag for the movie: "{text}" is "{output}"'
    if task == "tag-generation":
        return f'"{output}" is the tag for the movie: "{text}"'
    if task == "rating":
        return f'{output} is the score for "{text}"'
    return f'the user liked "{text}" ({output})'


def scale_words(scale: RatingScale) -> str:
    if scale.step == 1:
        values = range(int(scale.low), int(scale.high) + 1)
        return f"{', '.join(str(v) for v in values[:-1])}, or {values[-1]}"
    return f"a number from {scale.low:g} to {scale.high:g} in steps of {scale.step:g}"


def question(task: Task, example: Example, *, firm: bool) -> str:
    """The task's input question about ``example`` (LaMP's wording where LaMP has the task)."""
    item = example.item
    if task.name == "tagging":
        text = (
            "Which tag does this movie relate to among the following tags? Just answer with "
            f"the tag name without further explanation. tags: [{', '.join(task.labels)}] "
            f"description: {item.text}"
        )
        firm_text = "Answer with exactly one tag copied from the list above, and nothing else."
    elif task.name == "tag-generation":
        text = (
            "Which tag would this user write for the following movie? Just answer with a "
            f"short tag of one to three words without further explanation. movie: {item.text}"
        )
        firm_text = "Answer with the tag only: one to three lower-case words, no sentence."
    elif task.name == "rating":
        if task.scale is None:
            raise ConfigError("a rating task has no scale", "build it with build_task('rating')")
        words = scale_words(task.scale)
        text = (
            f"What is the score this user would give the following movie on a scale of "
            f"{task.scale.low:g} to {task.scale.high:g}? Just answer with {words} without "
            f"further explanation. movie: {item.text}"
        )
        firm_text = f"Answer with one number only ({words})."
    else:
        tags = ", ".join(item.tags[:12]) or "none"
        text = (
            f'Explain in one sentence why the movie "{item.title}" is recommended to this '
            f"user. Use only its genres ({', '.join(item.genres) or 'none'}), its tags "
            f"({tags}) and the movies the user liked; do not invent other facts."
        )
        firm_text = "Write one plain sentence that starts with 'Because you liked'."
    return f"{text} {firm_text}" if firm else text


def shot(task: Task, entry: ProfileEntry) -> str:
    """An entry's answer as a worked example: for tagging, its label if it has one."""
    if task.name == "tagging":
        return next((t for t in entry.output.split(", ") if t in task.labels), entry.output)
    return entry.output


def build_messages(
    task: Task, example: Example, entries: Sequence[ProfileEntry], *, firm: bool = False
) -> list[ChatMessage]:
    """The chat for ``example`` with ``entries`` (already retrieved and budgeted) as profile.

    First attempt: LaMP's single prompt (profile sentences, then the question). Firmer
    retries: the question as the system turn and each entry as a user turn (the movie)
    answered by an assistant turn (the user's output), so a small chat model sees the
    answer format before the movie it must answer for.
    """
    ask = question(task, example, firm=firm)
    if firm:
        shots = []
        for entry in entries:
            shots += [ChatMessage("user", entry.text), ChatMessage("assistant", shot(task, entry))]
        return [ChatMessage("system", ask), *shots, ChatMessage("user", example.input)]
    if entries:
        ask = f"{JOIN.join(profile_sentence(task.name, e) for e in entries)}. {ask}"
    return [ChatMessage("user", ask)]
