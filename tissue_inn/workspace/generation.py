"""Generation counters: what makes late answers of background work harmless.

Every pixel request and map job carries the generation current when it started; a later click, model
or image starts a new generation, and answers of older ones are dropped
(:meth:`tissue_inn.workspace.Workspace.accept_pixel`, :meth:`~tissue_inn.workspace.Workspace.accept_maps`).
"""

from __future__ import annotations

__all__ = ["Generation"]


class Generation:
    """A counter of requests: :meth:`next` starts a new one, :meth:`is_current` says whether an answer
    still belongs to the latest.

    >>> g = Generation(); a = g.next(); b = g.next()
    >>> g.is_current(a), g.is_current(b)
    (False, True)
    """

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value

    def is_current(self, generation: int) -> bool:
        return generation == self.value
