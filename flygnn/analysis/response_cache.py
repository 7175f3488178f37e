"""The disk cache key of simulated responses (:func:`~flygnn.analysis.runners.stimulus_responses`).

Responses are cached when the stimulus dataset names its parameters (``cache_token()``) and
the network is a flygnn :class:`~flygnn.network.Network` with flygnn's own dynamics:
:func:`network_digest` hashes everything its responses depend on, :func:`response_key`
combines it with the stimulus and the runner's protocol, and :data:`KEEP_RESPONSES` bounds the
number of response sets kept on disk.
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["KEEP_RESPONSES", "network_digest", "response_key"]

#: responses of this many (network, stimulus set) pairs are kept on disk (~40 MB each for the
#: default moving edges); the least recently used are deleted first
KEEP_RESPONSES = 8


def network_digest(net: torch.nn.Module) -> bytes | None:
    """SHA-256 of everything a flygnn Network's responses depend on (parameters, buffers, graph,
    dynamics), or None for other modules and custom dynamics (their responses are not cached)."""
    from flygnn.network import Network

    if type(net) is not Network or not type(net.dynamics).__module__.startswith("flygnn."):
        return None
    h = hashlib.sha256(repr((net.config(), type(net.dynamics).__name__)).encode())
    g = net.graph
    tensors = [*net.state_dict().items(),
               *((n, getattr(g, n)) for n in ("node_type", "source", "target", "pair_index",
                                               "offset_index"))]
    for name, tensor in tensors:
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:{tensor.device.type}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    h.update(repr(net.input_nodes.tolist() if isinstance(net.input_nodes, torch.Tensor)
                  else net.input_nodes).encode())
    return h.digest()


def response_key(net, dataset, protocol: dict) -> str | None:
    """The cache key of ``net``'s responses to ``dataset`` under ``protocol`` (a dict of the
    runner's settings), or None when they are not cached: a dataset without
    ``cache_token()`` or with ``cache = False``, or a network :func:`network_digest` does not
    cover."""
    token = getattr(dataset, "cache_token", None)
    if token is None or not getattr(dataset, "cache", True):
        return None
    net_digest = network_digest(net)
    if net_digest is None:
        return None
    from flygnn.diskcache import digest

    return digest(token(), protocol, extra=net_digest)
