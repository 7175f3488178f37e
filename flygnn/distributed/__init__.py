"""Ensembles beyond one machine: train and evaluate many models as Ray tasks.

The paper's findings rest on an ensemble of 50 networks. :func:`train_ensemble` trains N
members (different seeds and/or configs) in parallel, one `Ray <https://www.ray.io>`_ task
per member, on the local machine (default) or on a running Ray cluster (``address``);
:func:`evaluate_ensemble` computes every member's responses and tuning indices as Ray tasks,
then clusters the members per cell type (one task per type). Ray is an optional extra::

    pip install "flygnn[ray]"

*Why Ray tasks.* A member is an independent, long, checkpointed job: exactly a Ray task.
``max_retries`` re-runs a task whose worker or node died, and each attempt resumes the
member from its own ``checkpoint.pt`` (:class:`~flygnn.train.Trainer` with ``resume=True``),
so a lost worker costs at most ``optim.checkpoint_every`` iterations. The same code runs on
a laptop and on a cluster; nothing needs a shared launcher or a fixed world size, unlike a
``torch.distributed`` process group, which suits one model split over many GPUs instead.

From Python (``address=None`` starts a private local Ray on this machine instead)::

    from flygnn.distributed import evaluate_ensemble, train_ensemble

    manifest = train_ensemble("cfg.json", "ens", n_members=50, address="auto")
    result = evaluate_ensemble("ens", address="auto")   # result["fri"], result["clustering"]

Ensemble folder (readable by :meth:`flygnn.analysis.ensembles.Ensemble.from_dir`)::

    <out>/ensemble.json            members: name, seed, config, status, attempts, metrics
    <out>/000/, <out>/001/, ...    run folders of flygnn.train (network.pt, metrics.json, ...)
    <out>/<member>/attempts.jsonl  one line per attempt: pid, host, node, start iteration
    <out>/evaluation/              written by evaluate_ensemble (see there)

Running on a real cluster
-------------------------
All machines need the same Python environment with ``flygnn[ray]`` and, for the results, one
shared file system holding ``<out>`` (NFS, Lustre, ...). On the head node::

    ray start --head --port=6379

on every worker node::

    ray start --address=<head>:6379

then, on any node of the cluster::

    flygnn train-ensemble --config cfg.json --members 50 --out /shared/ens --address <head>:6379
    flygnn evaluate-ensemble /shared/ens --address <head>:6379

``--address auto`` joins the cluster the current machine belongs to; ``ray://<head>:10001``
uses Ray Client from outside the cluster. Recent Ray versions turn on token authentication:
give every node and the driver the head's token (copy ``~/.ray/auth_token``, or set
``RAY_AUTH_TOKEN``); see https://docs.ray.io/en/latest/ray-security/token-auth.html.
Members with ``device="cuda"`` should be given ``num_gpus_per_member=1``
(``--gpus-per-member 1``). Rerunning with ``resume=True``
(``--resume``) skips finished members and resumes the others from their checkpoints, e.g.
after the driver itself was stopped. ``ray stop`` on every node ends the cluster.

Modules: :mod:`~flygnn.distributed.ray_session` (connecting to Ray, task options),
:mod:`~flygnn.distributed.training` (:func:`train_ensemble`, the manifest) and
:mod:`~flygnn.distributed.evaluation` (:func:`evaluate_ensemble`, :func:`load_responses`).
"""

from flygnn.distributed.evaluation import STIMULI, evaluate_ensemble, load_responses
from flygnn.distributed.ray_session import INSTALL_HINT
from flygnn.distributed.training import MANIFEST, read_manifest, train_ensemble

__all__ = ["INSTALL_HINT", "MANIFEST", "STIMULI", "train_ensemble", "evaluate_ensemble",
           "read_manifest", "load_responses"]
