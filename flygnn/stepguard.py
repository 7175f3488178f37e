"""What training does with a step whose loss is not finite (``optim.skip_nonfinite``).

A simulation that leaves the network's stable range returns NaN or infinity. The step is
then skipped: no weight changes, the decoder's running statistics are put back to what they
were before its forward pass, and the update before it -- the one that led there -- is taken
back (weights, decoder statistics and Adam's state). After more than ``limit`` such steps in
a row, training stops with a :class:`FloatingPointError` that says how many. Runs whose
losses stay finite are unchanged bit for bit.

Non-finite steps can also alternate with finite ones without end: a network at the edge of its
stable range takes one finite step, its update crosses the edge again, and the next step takes
that update back. The weights then never move, and no two non-finite steps are in a row.
:attr:`NonFiniteGuard.stalled` counts the non-finite steps since the last update that lasted
(one followed by a finite step); the trainer ends the stage when it reaches
``optim.nonfinite_stall`` (:class:`~flygnn.train.Trainer`). With ``optim.nonfinite_backoff``
each update taken back also lowers the network's rate, so the next attempt takes a shorter
step towards the edge (a backtracking line search), and lasting updates raise it again.
"""

from __future__ import annotations

import copy

import torch

__all__ = ["NonFiniteGuard"]


class NonFiniteGuard:
    """Skips non-finite steps and takes back the update that led to them.

    Args:
        limit: how many such steps in a row are skipped (0: stop at the first).
        backoff: each update taken back multiplies :attr:`rate` (the factor on the network's
            learning rate) by this; each update that lasts divides it by ``backoff ** 0.1``
            (back to 1 after 10 lasting updates per halving). 1: the rate never changes.
        shrink: each update taken back also scales the restored synapse strengths by
            ``1 - shrink``, which lowers the loop gain of the network: a step back into its
            stable range, against the gradient that led out of it. 0: never.
    """

    def __init__(self, limit: int, backoff: float = 1.0, shrink: float = 0.0) -> None:
        self.limit, self.count = int(limit), 0  # count: skipped steps in a row
        self.stalled = 0  # skipped steps since the last update that lasted
        self.backoff, self.rate, self.shrink = float(backoff), 1.0, float(shrink)
        self._undo: dict | None = None  # the weights and Adam's state before the last update
        self._statistics: dict = {}

    def before_forward(self, decoder: torch.nn.Module) -> None:
        """Remember the decoder's running statistics (its buffers), which a forward pass in
        training mode moves."""
        parameters = dict(decoder.named_parameters())
        self._statistics = {k: v.clone() for k, v in decoder.state_dict().items()
                            if k not in parameters}

    def before_update(self, network, decoder, optimizer) -> None:
        """Remember what a following non-finite step restores (the tables are small).

        Called on a finite step: if the update before it was not taken back, it lasted."""
        if self._undo is not None:
            self.stalled = 0
            self.rate = min(1.0, self.rate / self.backoff ** 0.1)
        self.count = 0
        if self.limit:
            self._undo = {"network": {k: v.clone() for k, v in network.state_dict().items()},
                          "decoder": {**{k: v.clone() for k, v in decoder.state_dict().items()},
                                      **self._statistics},
                          "optim": copy.deepcopy(optimizer.state_dict())}

    def skip(self, network, decoder, optimizer) -> bool:
        """Handle a non-finite step; returns whether the update before it was taken back.

        Raises:
            FloatingPointError: more than ``limit`` such steps in a row.
        """
        self.count += 1
        self.stalled += 1
        optimizer.zero_grad(set_to_none=True)
        undone = self._undo is not None
        if undone:
            self.rate *= self.backoff
            network.load_state_dict(self._undo["network"])
            decoder.load_state_dict(self._undo["decoder"])
            optimizer.load_state_dict(self._undo["optim"])
            self._undo = None
            if self.shrink:
                with torch.no_grad():
                    network.syn_strength.mul_(1.0 - self.shrink)
        else:
            decoder.load_state_dict(self._statistics, strict=False)
        if self.count > self.limit:
            raise FloatingPointError(f"the {self.count}th step in a row "
                                     f"(optim.skip_nonfinite = {self.limit})")
        return undone

    def scale_rates(self, optimizer, lr_net: float) -> None:
        """Set the network's groups (all but the last, the decoder's) to ``lr_net`` times
        their ``scale`` times :attr:`rate`."""
        for group in optimizer.param_groups[:-1]:
            group["lr"] = lr_net * group.get("scale", 1.0) * self.rate

    def stall_reason(self, limit: int, iteration: int) -> str | None:
        """None while updates still last (or ``limit`` is 0); else why the stage ends."""
        if not limit or self.stalled < limit:
            return None
        return (f"{self.stalled} non-finite steps without an update that lasted, the last at "
                f"iteration {iteration} (optim.nonfinite_stall = {limit}): the network keeps "
                f"returning to the edge of its stable range; the stage ends and hands on its "
                f"best validated weights")
