"""Training the network and decoder on optic flow (flyvis ``MultiTaskSolver``, reference 9).

Per epoch (``n_train // batch_size`` iterations, a fresh random order, last partial batch
dropped): set the stepwise learning rates, compute one grey steady state (``t_pre``, no
gradient) from which every batch of the epoch starts. Per iteration: simulate the movies
with gradient (BPTT through the fused sparse engine), decode, ``l2norm`` loss plus the
regularisers (:mod:`flygnn.constraints`), backward, Adam step on two groups (network,
decoder); then the activity penalty (9.5) as a plain SGD step on the resting potentials
``bias`` only, and the constraints (:mod:`flygnn.constraints`: clamp, floor, fixed pairs,
log-space steps).

*Activity penalty.* flyvis back-propagates the penalty through the same activity graph
after the Adam step. Here its gradient is taken with ``torch.autograd.grad`` before the
Adam step (the graph holds the pre-step parameters either way), and applied after it as
``bias -= lr_pen * dP/dbias``: the same update, without reusing a graph whose leaves were
modified in place. With ``optim.rest_grad_steps`` the loss is differentiated through the grey
rest (:func:`~flygnn.simulate.relax_rest`), the penalty is not (a
:class:`~flygnn.simulate.RestGate` holds the start state constant for it, as flyvis does):
near the edge of stability the rest's gradient grows without bound, and the penalty's plain
SGD step, unlike Adam's, would follow it (one such step moved resting potentials to 1e12).

*Reproducibility.* All randomness comes from three ``torch.Generator`` seeded from
``config.seed``: data order, augmentation and dropout. A checkpoint stores them, the epoch's
order, position and steady state, so a resumed run continues bit for bit.

A :class:`~flygnn.rundir.RunDir` keeps the run's files (config, log, checkpoints, model);
this module is the loop. Multi-stage trainings are recipes (:mod:`flygnn.recipes`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from flygnn.build import build_datasets, build_decoder, build_network, build_optimizer
from flygnn.checkpoint import FORMAT, atomic_torch_save, load_checkpoint
from flygnn.config import TrainConfig
from flygnn.constraints import build_constraints, build_regularisers
from flygnn.layers import Dropout
from flygnn.network import Network
from flygnn.neurons import make_model
from flygnn.rundir import LOG_COLUMNS, RunDir
from flygnn.simulate import RestGate, relax_rest, simulate, state_size, steady_state
from flygnn.stepguard import NonFiniteGuard
from flygnn.task import activity_penalty, batch_of, evaluate, l2norm, zero_flow_error

__all__ = ["LOG_COLUMNS", "Trainer", "activity_penalty", "build_datasets", "run_training"]

log = logging.getLogger(__name__)


def _seeds(seed: int, n: int) -> list[int]:
    return [int(s.generate_state(1, np.uint64)[0] % (2**63)) for s in
            np.random.SeedSequence(seed).spawn(n)]


class Trainer:
    """Train a :class:`~flygnn.network.Network` and a :class:`~flygnn.task.FlowDecoder`.

    Args:
        config: the run's :class:`~flygnn.config.TrainConfig` (None: read ``out/config.json``
            when resuming).
        out: run folder (:class:`~flygnn.rundir.RunDir`). A new run needs a missing or empty
            folder; a folder with files is only continued with ``resume=True``.
        resume: continue the run in ``out``; ``config`` must then equal the saved one
            (except ``device``).
        progress: show a tqdm progress bar.
        datasets: optional ``(train, val)`` datasets replacing :func:`build_datasets`
            (items ``{"lum": (T, n), "flow": (T, 2, n)}``); a ``transform`` attribute of the
            training set with a ``generator`` (e.g. an ``Augment``) gets the run's generator.
        data: optional connectome ``HeteroData``/``FlatGraph`` of ``config.network.extent``.
        desc: label of the progress bar.
        on_validation: called with the trainer after each validation (e.g. to plot the log).
    """

    def __init__(self, config: TrainConfig | None, out: str | os.PathLike, resume: bool = False,
                 progress: bool = False, datasets=None, data=None, desc: str = "train",
                 on_validation: Callable | None = None) -> None:
        self.run = RunDir(out, resume)
        self.out = self.run.path
        config = self.run.resolve_config(config)
        self.config, self.progress, self.desc = config, progress, desc
        self.on_validation = on_validation
        self.device = torch.device(config.device)
        seeds = _seeds(config.seed, 3)
        self.generators = {"order": torch.Generator().manual_seed(seeds[0]),
                           "augment": torch.Generator().manual_seed(seeds[1]),
                           "dropout": torch.Generator(device=self.device).manual_seed(seeds[2])}
        if datasets is None:
            datasets = build_datasets(config, self.generators["augment"])
        self.train_set, self.val_set = datasets
        transform = getattr(self.train_set, "transform", None)
        if isinstance(getattr(transform, "generator", None), torch.Generator):
            transform.generator = self.generators["augment"]  # e.g. an Augment: reproducible
        if len(self.train_set) < config.optim.batch_size:
            raise ValueError(f"optim.batch_size {config.optim.batch_size} exceeds the "
                             f"{len(self.train_set)} training movies")
        resume_from = self.run.resume_point() if resume else None
        self.network = build_network(self._start_config(resume_from is not None), data)
        self.network = self.network.to(self.device)
        self.decoder = build_decoder(self._start_config(resume_from is not None), self.network)
        self.decoder = self.decoder.to(self.device)
        for module in self.decoder.modules():
            if isinstance(module, Dropout):  # reproducible masks, restored on resume
                module.generator = self.generators["dropout"]
        self.optimizer = build_optimizer(config.optim, self.network, self.decoder)
        self.central = self.network.graph.central_index.to(self.device)
        self.constraints = build_constraints(config.optim, self.network, config.data.dt)
        self.regularisers = build_regularisers(config.optim, self.network)
        for constraint in self.constraints:
            constraint.start(self.network)
        self.iteration, self.epoch, self.position, self.epoch_start = 0, 0, 0, 0
        self.order: torch.Tensor | None = None
        self.epoch_state = None
        self.best = {"val_epe": math.inf, "val_l2norm": math.inf, "iteration": -1}
        self.elapsed = 0.0
        o = config.optim
        self.guard = NonFiniteGuard(o.skip_nonfinite, o.nonfinite_backoff, o.nonfinite_shrink)
        if resume_from is not None:
            self._restore(*resume_from)
        else:  # a checkpoint from the start: a log never runs ahead of all checkpoints
            self.run.start(config)
            if config.optim.val_at_start:  # the starting weights compete for the best
                start = self.validate()
                self.best = {"val_epe": start["epe"], "val_l2norm": start["l2norm"],
                             "iteration": 0, "start_val_epe": start["epe"]}
                self.run.save_checkpoint(self.state_dict(), best=True)
            self.save_checkpoint()

    # ------------------------------------------------------------------ state
    def _start_config(self, resuming: bool) -> TrainConfig:
        """The config to build from: a checkpoint overwrites the starting weights, so a
        resume does not need the init files (a flyvis init still does: its architecture
        comes from the file)."""
        if not resuming:
            return self.config
        n, d = self.config.network, self.config.decoder
        skip_net = n.init is not None and not n.init_flyvis and not os.path.exists(n.init)
        return dataclasses.replace(
            self.config, network=dataclasses.replace(n, init=None) if skip_net else n,
            decoder=dataclasses.replace(d, init=None))

    def _lrs(self) -> tuple[float, float, float]:
        """(network, decoder, penalty) rates of the current epoch (set at its first iteration)."""
        o, it = self.config.optim, self.epoch_start
        network_on = 0.0 if it < o.net_warmup else 1.0
        return (network_on * o.lr_net.value(it, o.n_iters), o.lr_dec.value(it, o.n_iters),
                network_on * o.lr_pen_schedule().value(it, o.n_iters))

    def state_dict(self) -> dict:
        """The full training state: tensors and plain Python values only (``torch.load``
        with ``weights_only=True`` reads it)."""
        return {"format": FORMAT, "version": 1, "network": self.network.state_dict(),
                "decoder": self.decoder.state_dict(), "optim": self.optimizer.state_dict(),
                "rng": {k: g.get_state() for k, g in self.generators.items()},
                "iteration": self.iteration, "epoch": self.epoch, "order": self.order,
                "position": self.position, "epoch_start": self.epoch_start,
                "epoch_state": self.epoch_state, "best": self.best,
                "best_val_epe": self.best["val_epe"], "elapsed": self.elapsed,
                "nonfinite": self.guard.count, "nonfinite_stalled": self.guard.stalled,
                "nonfinite_rate": self.guard.rate,
                "hooks": [h.state_dict() for h in self.constraints + self.regularisers],
                "config": self.config.to_json(), "time": time.ctime()}

    def _restore(self, blob: dict, path) -> None:
        try:
            self.network.load_state_dict(blob["network"])
            self.decoder.load_state_dict(blob["decoder"])
            self.optimizer.load_state_dict(blob["optim"])
        except (RuntimeError, ValueError, KeyError) as err:
            first = str(err).strip().splitlines()
            raise ValueError(f"checkpoint {str(path)!r} does not fit the network, decoder or "
                             f"optimiser of the run's config (extent "
                             f"{self.config.network.extent}): {' '.join(first[:3])}") from None
        for k, g in self.generators.items():
            try:
                g.set_state(blob["rng"][k])
            except RuntimeError:  # a state saved on another device type: not bit-exact any more
                log.warning("could not restore the %r generator state; reseeded", k)
        self.iteration, self.epoch = blob["iteration"], blob["epoch"]
        self.position = blob["position"]
        self.order, self.epoch_start = blob["order"], int(blob.get("epoch_start", 0))
        state = blob["epoch_state"]
        self.epoch_state = None if state is None else state.to(self.device)
        self.best, self.elapsed = dict(blob["best"]), float(blob["elapsed"])
        self.guard.count = int(blob.get("nonfinite", 0))
        self.guard.stalled = int(blob.get("nonfinite_stalled", 0))
        self.guard.rate = float(blob.get("nonfinite_rate", 1.0))
        for hook, state in zip(self.constraints + self.regularisers, blob.get("hooks", [])):
            hook.load_state_dict(state)
        self.run.repair_log(self.iteration)
        log.info("resumed %s at iteration %d", self.out, self.iteration)

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> os.PathLike:
        """Write the full training state atomically (default ``out/checkpoint.pt``)."""
        if path is None:
            return self.run.save_checkpoint(self.state_dict())
        return atomic_torch_save(self.state_dict(), path)

    # ------------------------------------------------------------------ training
    def _start_epoch(self) -> None:
        self.order = torch.randperm(len(self.train_set), generator=self.generators["order"])
        self.position, self.epoch, self.epoch_start = 0, self.epoch + 1, self.iteration
        lr_net, lr_dec, _ = self._lrs()
        self.guard.scale_rates(self.optimizer, lr_net)  # the network's groups
        self.optimizer.param_groups[-1]["lr"] = lr_dec
        with torch.no_grad():  # batch 1: grey is the same for every sample, and so is its rest
            self.epoch_state = steady_state(self.network, self.config.optim.t_pre,
                                            self.config.data.dt)

    def _forward(self, lum, flow, learn_net: bool):
        """The loss of a batch (task and regularisers), the responses and the rest's gate."""
        o, net = self.config.optim, self.network
        start, gate = self.epoch_state, RestGate()
        if learn_net and o.rest_grad_steps:
            start = relax_rest(net, start, o.rest_grad_steps, gate=gate)  # max iterations
        responses = simulate(net, lum, self.config.data.dt, initial_state=start, grad=learn_net)
        rest = net.dynamics.activity(start)
        loss = l2norm(self.decoder(responses, rest), flow)
        if learn_net:
            for term in self.regularisers:
                loss = loss + term(rest, responses)
        return loss, responses, gate

    def step(self, lum: torch.Tensor, flow: torch.Tensor) -> float:
        """One optimisation step on a batch; returns the loss.

        Shapes: ``(B, T, n)``, ``(B, T, 2, n)``."""
        o, net = self.config.optim, self.network
        net.train()
        self.decoder.train()
        # no graph through the network while its rate is 0 (decoder-only runs, warm-up)
        learn_net = o.train_network and self._lrs()[0] > 0
        if learn_net and o.fresh_state and self.position > o.batch_size:
            with torch.no_grad():  # the network changed since the epoch's state was computed
                self.epoch_state = steady_state(net, o.t_pre, self.config.data.dt)
        self.guard.before_forward(self.decoder)
        size = state_size(self.epoch_state) if learn_net and o.max_rest else 0.0
        if size > o.max_rest:  # the rest ran away: treated as non-finite
            loss, responses, gate = torch.tensor(float("nan")), None, None
            log.warning("%s: the grey rest ran away (|v| up to %.3g)", self.out, size)
        else:
            loss, responses, gate = self._forward(lum, flow, learn_net)
        if not torch.isfinite(loss):  # no step (flygnn.stepguard)
            value = float(loss.detach())
            try:
                undone = self.guard.skip(net, self.decoder, self.optimizer)
            except FloatingPointError as err:
                raise FloatingPointError(f"loss is {value} at iteration {self.iteration + 1}, "
                                         f"{err}") from None
            if undone:
                with torch.no_grad():
                    self.epoch_state = steady_state(net, o.t_pre, self.config.data.dt)
            log.warning("%s: loss is %s at iteration %d; step skipped%s (%d in a row)", self.out,
                        value, self.iteration + 1,
                        " and the update before it undone" if undone else "", self.guard.count)
            return value
        penalize = (o.penalty.weight > 0 and self.iteration < o.penalty.stop_iter and learn_net
                    and net.bias.requires_grad)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(retain_graph=penalize)
        if penalize:
            p = o.penalty
            penalty = activity_penalty(responses, self.central, p.target, p.weight, p.below,
                                       p.above)
            gate.enabled = False  # flyvis's penalty gradient: the start state held constant
            (grad_bias,) = torch.autograd.grad(penalty, net.bias)
            gate.enabled = True
        for constraint in self.constraints:
            constraint.before_step(net)
        self.guard.before_update(net, self.decoder, self.optimizer)
        self.guard.scale_rates(self.optimizer, self._lrs()[0])
        self.optimizer.step()
        if penalize:
            with torch.no_grad():
                step = self._lrs()[2] * grad_bias
                if o.penalty.max_step is not None:  # no runaway step near instability
                    step.clamp_(-o.penalty.max_step, o.penalty.max_step)
                net.bias.sub_(step)
        for constraint in self.constraints:
            constraint.after_step(net)
        return float(loss.detach())

    def validate(self) -> dict[str, float]:
        """:func:`evaluate` on the validation set with the config's ``val_t_pre``."""
        o = self.config.optim
        return evaluate(self.network, self.decoder, self.val_set, self.config.data.dt, o.val_t_pre,
                        o.val_batch_size)

    def train(self, until: int | None = None) -> dict:
        """Train up to iteration ``until`` (default ``optim.n_iters``), then checkpoint.

        Returns the metrics (also written to ``metrics.json`` once ``n_iters`` is reached).
        """
        o = self.config.optim
        stop = o.n_iters if until is None else min(int(until), o.n_iters)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=o.n_iters, initial=self.iteration, desc=self.desc, unit="it")
        stopped = None
        try:
            while self.iteration < stop:
                self._iterate()
                stopped = self.guard.stall_reason(o.nonfinite_stall, self.iteration)
                if stopped is not None:
                    log.warning("%s: %s", self.out, stopped)
                    break
                if self.iteration % o.checkpoint_every == 0 and self.iteration < stop:
                    self.save_checkpoint()
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        self.save_checkpoint()
        metrics = {"iteration": self.iteration, "best_iteration": self.best["iteration"],
                   "best_val_epe": self.best["val_epe"], "best_val_l2norm": self.best["val_l2norm"],
                   "train_time_s": round(self.elapsed, 1)}
        if "start_val_epe" in self.best:
            metrics["start_val_epe"] = self.best["start_val_epe"]
        if stopped is not None:
            metrics["stopped_early"] = stopped
        if self.iteration >= o.n_iters or stopped is not None:
            self.finish(metrics)
        return metrics

    def _iterate(self) -> None:
        """One iteration: a batch, a step, the log row, validation when due."""
        o = self.config.optim
        t0 = time.perf_counter()
        if self.order is None or self.position + o.batch_size > len(self.order):
            self._start_epoch()
        index = self.order[self.position:self.position + o.batch_size]
        lum, flow = batch_of([self.train_set[int(i)] for i in index], self.device)
        self.position += o.batch_size
        loss = self.step(lum, flow)
        self.iteration += 1
        row = {"iteration": self.iteration, "loss": loss, "lr": self._lrs()[0],
               "val_l2norm": "", "val_epe": ""}
        if self.iteration % o.val_every == 0 or self.iteration == o.n_iters:
            metrics = self.validate()
            row.update(val_l2norm=metrics["l2norm"], val_epe=metrics["epe"])
            if metrics["epe"] < self.best["val_epe"]:
                self.best = {**self.best, "val_epe": metrics["epe"],
                             "val_l2norm": metrics["l2norm"], "iteration": self.iteration}
                self.run.save_checkpoint(self.state_dict(), best=True)
        self.elapsed += time.perf_counter() - t0
        row["time"] = round(self.elapsed, 3)
        self.run.append_log(row)
        if row["val_epe"] != "" and self.on_validation is not None:
            self.on_validation(self)

    def finish(self, metrics: dict) -> None:
        """Write ``network.pt``, ``decoder.pt`` (best weights) and ``metrics.json``."""
        best = self.run.best_file
        blob = load_checkpoint(best) if best.exists() else self.state_dict()
        dynamics = make_model(self.network.dynamics.name, self.network.dynamics.config())
        net = Network(self.network.graph, dynamics)
        net.load_state_dict(blob["network"])
        metrics = dict(metrics, zero_flow=zero_flow_error(self.val_set))
        self.run.write_model(net, blob["decoder"], metrics)


def run_training(config: str | os.PathLike | None, out: str | os.PathLike,
                 overrides: list[str] | None = None, resume: bool = False,
                 progress: bool = True, until: int | None = None,
                 on_validation: Callable | None = None) -> dict:
    """Start or resume a single-stage run from a JSON config file (``flygnn train --config``).

    Args:
        config: JSON file of a :class:`~flygnn.config.TrainConfig` (partial is fine); may be
            None when resuming (the run's ``config.json`` is used).
        out: run folder.
        overrides: ``key=value`` strings applied to the config (``optim.n_iters=1000``).
        resume: continue ``out``.
        progress: tqdm progress bar.
        until: stop (with a checkpoint) at this iteration.
        on_validation: called with the trainer after each validation.
    """
    cfg = None
    if config is not None:
        cfg = TrainConfig.from_json(config)
    elif overrides and not (Path(out) / "config.json").exists():
        cfg = TrainConfig()
    elif not resume:
        raise ValueError("--config is required unless --resume continues an existing run")
    if overrides:
        base = cfg if cfg is not None else TrainConfig.from_json(Path(out) / "config.json")
        cfg = base.with_overrides(overrides)
    trainer = Trainer(cfg, out, resume=resume, progress=progress, on_validation=on_validation)
    return trainer.train(until)
