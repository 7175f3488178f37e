"""Flow decoder (flyvis DecoderGAVP) and the l2norm / EPE losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from flygnn.datasets import FlyVisConnectome
from flygnn.flat import flatten
from flygnn.layers import HexConv2d, RunningRMS, hex_mask
from flygnn.task import FlowDecoder, epe, l2norm

FLYVIS_KEYS = {  # flyvis checkpoint decoder["flow"] entries and shapes at extent 15 (reference 12.2)
    "base.0.weight": (8, 34, 5, 5), "base.0.bias": (8,), "base.1.weight": (8,),
    "base.1.bias": (8,), "base.1.running_mean": (8,), "base.1.running_var": (8,),
    "base.1.num_batches_tracked": (), "decoder.0.weight": (3, 8, 5, 5), "decoder.0.bias": (3,),
}


@pytest.fixture(scope="module")
def graph15():
    return flatten(FlyVisConnectome(extent=15)[0])


@pytest.fixture(scope="module")
def graph2():
    return flatten(FlyVisConnectome(extent=2)[0])


def test_parameter_count_and_flyvis_names(graph15):
    dec = FlowDecoder(graph15)
    assert sum(p.numel() for p in dec.parameters()) == 7427
    assert {k: tuple(v.shape) for k, v in dec.state_dict().items()} == FLYVIS_KEYS


def test_loads_a_flyvis_decoder_state_dict(graph15):
    g = torch.Generator().manual_seed(0)
    state = {k: torch.rand(s, generator=g) for k, s in FLYVIS_KEYS.items()}
    state["base.1.num_batches_tracked"] = torch.tensor(12345)
    dec = FlowDecoder(graph15)
    dec.load_state_dict(state)  # strict: names and shapes match exactly
    assert torch.equal(dec.decoder[0].weight, state["decoder.0.weight"])
    assert int(dec.base[1].num_batches_tracked) == 12345


def test_hex_mask_keeps_19_entries_and_drops_the_six_corners():
    mask = hex_mask(5)
    dropped = {(du, dv) for du in range(-2, 3) for dv in range(-2, 3) if mask[du + 2, dv + 2] == 0}
    assert dropped == {(-2, -2), (-2, -1), (-1, -2), (2, 2), (2, 1), (1, 2)}
    assert int(mask.sum()) == 19
    assert torch.equal(hex_mask(1), torch.ones(1, 1))
    assert int(hex_mask(3).sum()) == 7


@pytest.mark.parametrize("size", [0, 4, -3])
def test_hex_mask_rejects_bad_kernel_size(size):
    with pytest.raises(ValueError, match="kernel_size"):
        hex_mask(size)


def test_const_init_is_masked_and_corners_get_no_gradient():
    conv = HexConv2d(2, 3, 5, const_weight=0.001)
    mask = hex_mask(5)
    assert torch.equal(conv.weight, 0.001 * mask.expand(3, 2, 5, 5))
    assert torch.equal(conv.bias, torch.full((3,), 0.001))
    with torch.no_grad():
        conv.weight.fill_(1.0)  # corners set by hand are still ignored in forward
    x = torch.randn(1, 2, 7, 7, generator=torch.Generator().manual_seed(1))
    y = conv(x)
    expected = F.conv2d(x, mask.expand(3, 2, 5, 5), conv.bias, padding=2)
    torch.testing.assert_close(y, expected)
    y.sum().backward()
    assert torch.all(conv.weight.grad[..., mask == 0] == 0)
    assert torch.all(conv.weight.grad[..., mask == 1] != 0)


def _reference_forward(dec: FlowDecoder, graph, responses):
    """Independent re-computation in eval mode, looping over neurons for the map."""
    E = graph.extent
    B, T, _ = responses.shape
    maps = torch.zeros(B * T, len(graph.output_types), 2 * E + 1, 2 * E + 1)
    flat = responses.reshape(B * T, -1)
    for c, cell_type in enumerate(graph.output_types):
        sl = graph.type_slice(cell_type)
        for i in range(sl.start, sl.stop):
            maps[:, c, int(graph.u[i]) + E, int(graph.v[i]) + E] = flat[:, i].clamp(min=0)
    mask = hex_mask(5)
    c0, bn, c1 = dec.base[0], dec.base[1], dec.decoder[0]
    h = F.conv2d(maps, c0.weight * mask, c0.bias, padding=2)
    h = (h - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    h = F.softplus(h * bn.weight[:, None, None] + bn.bias[:, None, None])
    o = F.conv2d(h, c1.weight * mask, c1.bias, padding=2)
    y = o[:, :2] / (torch.log1p(torch.exp(o[:, 2:3])) + 1)
    sl = graph.type_slice(graph.output_types[0])
    u, v = graph.u[sl] + E, graph.v[sl] + E
    return y[:, :, u, v].reshape(B, T, 2, -1)


def test_forward_matches_independent_computation(graph2):
    torch.manual_seed(0)
    dec = FlowDecoder(graph2, const_weight=None)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in dec.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        dec.base[1].running_mean.copy_(torch.randn(8, generator=g))
        dec.base[1].running_var.copy_(torch.rand(8, generator=g) + 0.5)
    dec.eval()
    responses = torch.randn(2, 3, graph2.num_nodes, generator=g)
    out = dec(responses)
    assert out.shape == (2, 3, 2, 19)
    torch.testing.assert_close(out, _reference_forward(dec, graph2, responses), rtol=1e-5, atol=1e-6)


def _random_decoders(graph, generator, *references):
    """Decoders in eval mode with the same random weights, one per input reference."""
    first = FlowDecoder(graph, const_weight=None)
    with torch.no_grad():
        for p in first.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    out = []
    for reference in references:
        dec = FlowDecoder(graph, const_weight=None, input_reference=reference)
        dec.load_state_dict(first.state_dict())
        out.append(dec.eval())
    return out


def test_rest_reference_decodes_the_change_from_rest(graph2):
    """input_reference="rest" reads relu(a) - relu(a_rest): the flyvis decoder on that input."""
    g = torch.Generator().manual_seed(5)
    plain, rest_dec = _random_decoders(graph2, g, "none", "rest")
    rest = torch.randn(1, graph2.num_nodes, generator=g)
    # responses >= relu(rest): the change is non-negative, so the plain decoder's own relu
    # leaves it unchanged
    responses = torch.maximum(torch.randn(2, 3, graph2.num_nodes, generator=g), rest.relu()[:, None])
    change = responses.relu() - rest.relu()[:, None]
    assert (change >= 0).all()
    torch.testing.assert_close(rest_dec(responses, rest), plain(change))
    assert not torch.allclose(rest_dec(responses, rest), plain(responses))
    with pytest.raises(ValueError, match="pass rest="):
        rest_dec(responses)
    with pytest.raises(ValueError, match="rest must have shape"):
        rest_dec(responses, rest[:, :5])
    with pytest.raises(ValueError, match="input_reference must be one of"):
        FlowDecoder(graph2, input_reference="mean")


def test_rest_positive_reference_reads_only_the_rise_above_rest(graph2):
    """input_reference="rest_positive" is the plain decoder on relu(relu(a) - relu(a_rest)): a fall
    below rest reads like the rest itself, a rise like the "rest" decoder's input."""
    g = torch.Generator().manual_seed(7)
    plain, positive, signed = _random_decoders(graph2, g, "none", "rest_positive", "rest")
    rest = torch.rand(1, graph2.num_nodes, generator=g) + 0.5
    responses = rest[:, None] + torch.randn(2, 3, graph2.num_nodes, generator=g)
    rise = (responses.relu() - rest.relu()[:, None]).clamp(min=0)
    assert (rise == 0).any() and (rise > 0).any()
    torch.testing.assert_close(positive(responses, rest), plain(rise))
    below = torch.minimum(responses, rest[:, None])  # every cell at or below its rest
    torch.testing.assert_close(positive(below, rest), plain(torch.zeros_like(below)))
    assert not torch.allclose(positive(below, rest), signed(below, rest))


def test_running_rms_scales_each_channel_by_its_running_root_mean_square():
    norm = RunningRMS(3, momentum=0.25)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(4, 3, 7, generator=g) * torch.tensor([1e-3, 1.0, 30.0])[:, None]
    y1 = norm(x1)  # the first batch sets the statistics
    ms1 = x1.pow(2).transpose(0, 1).reshape(3, -1).mean(1)
    torch.testing.assert_close(norm.mean_square, ms1)
    torch.testing.assert_close(y1.pow(2).transpose(0, 1).reshape(3, -1).mean(1), torch.ones(3))
    x2 = torch.randn(4, 3, 7, generator=g)
    y2 = norm(x2)  # later batches: exponential moving average, updated before use
    ms2 = 0.75 * ms1 + 0.25 * x2.pow(2).transpose(0, 1).reshape(3, -1).mean(1)
    torch.testing.assert_close(norm.mean_square, ms2)
    torch.testing.assert_close(y2, x2 / (ms2 + norm.eps).sqrt()[:, None])
    # eval mode: the same function of the stored statistics, which stay fixed
    norm.eval()
    torch.testing.assert_close(norm(x1), x1 / (ms2 + norm.eps).sqrt()[:, None])
    torch.testing.assert_close(norm.mean_square, ms2)
    with pytest.raises(ValueError, match="expected 3 channels"):
        norm(torch.zeros(2, 4, 7))
    with pytest.raises(ValueError, match="momentum"):
        RunningRMS(3, momentum=0.0)


def test_rms_input_norm_makes_the_decoder_independent_of_the_response_size(graph2):
    """With input_norm="rms" a response k times larger around the same rest decodes to
    the same flow, in training and eval mode (flyvis's decoder does not; float64 so that
    the comparison is not limited by rounding the small change)."""
    g = torch.Generator().manual_seed(1)
    rest = torch.rand(1, graph2.num_nodes, generator=g, dtype=torch.float64) + 0.5
    change = (torch.rand(2, 3, graph2.num_nodes, generator=g, dtype=torch.float64) - 0.5) * 0.8
    outs = {}
    for norm in ("rms", "none"):
        for k in (1e-2, 1.0):
            torch.manual_seed(0)
            dec = FlowDecoder(graph2, const_weight=None, p_dropout=0.0, input_reference="rest",
                              input_norm=norm).double()
            train_out = dec(rest[:, None] + k * change, rest)
            outs[norm, k] = train_out, dec.eval()(rest[:, None] + k * change, rest)
    for mode in (0, 1):
        torch.testing.assert_close(outs["rms", 1e-2][mode], outs["rms", 1.0][mode],
                                   rtol=1e-5, atol=1e-6)
        assert not torch.allclose(outs["none", 1e-2][mode], outs["none", 1.0][mode], atol=1e-3)
    # the running statistics are saved with the decoder, the flyvis names stay as they were
    dec = FlowDecoder(graph2, input_reference="rest", input_norm="rms")
    assert set(dec.state_dict()) - set(FlowDecoder(graph2).state_dict()) == {
        "input_norm.mean_square", "input_norm.initialized"}
    with pytest.raises(ValueError, match="input_norm must be one of"):
        FlowDecoder(graph2, input_norm="batch")


def test_dropout_generator_makes_training_forward_reproducible(graph2):
    dec = FlowDecoder(graph2)
    responses = torch.rand(2, 2, graph2.num_nodes, generator=torch.Generator().manual_seed(0))
    outs = []
    for _ in range(2):
        dec.dropout.generator = torch.Generator().manual_seed(7)
        outs.append(dec(responses))
    assert torch.equal(outs[0], outs[1])
    dec.dropout.generator = torch.Generator().manual_seed(8)
    assert not torch.equal(outs[0], dec(responses))


def test_type_dropout_drops_whole_types_in_training_only(graph2):
    """type_dropout=p: in training each (frame, type) input map is either kept and scaled
    by 1/(1-p) or zero, the same decoder without it on those inputs; eval mode ignores it."""
    g = torch.Generator().manual_seed(3)
    dec = FlowDecoder(graph2, const_weight=None, p_dropout=0.0, type_dropout=0.5)
    plain = FlowDecoder(graph2, const_weight=None, p_dropout=0.0)
    plain.load_state_dict(dec.state_dict())  # type dropout adds no parameters or buffers
    responses = torch.rand(2, 3, graph2.num_nodes, generator=g) + 0.1
    seen = []
    dec.input_dropout.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    dec.input_dropout.generator = torch.Generator().manual_seed(0)
    out = dec(responses)
    x, y = seen[0]
    ratio = (y / x.clamp(min=1e-12)).amax(dim=(2, 3))  # one value per (frame, type)
    kept = ratio > 1
    assert 0.3 < kept.float().mean() < 0.7
    torch.testing.assert_close(y, x * 2.0 * kept[..., None, None].float())
    o = plain.decoder(plain.base(y))  # the rest of the forward, on the dropped-out maps
    expected = plain.from_map(o[:, :2] / (F.softplus(o[:, 2:3]) + 1)).reshape(out.shape)
    torch.testing.assert_close(out, expected)
    dec.eval()
    plain.eval()
    torch.testing.assert_close(dec(responses), plain(responses))
    with pytest.raises(ValueError, match="type_dropout must be in"):
        FlowDecoder(graph2, type_dropout=1.0)


def _kept(dec, dropout, responses):
    """Run the decoder with a seeded ``dropout`` module; returns the factor each (frame, type)
    input map was multiplied by, and the list of the module's (input, output) pairs."""
    seen = []
    dropout.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    dropout.generator = torch.Generator().manual_seed(0)
    dec(responses)
    x, y = seen[0]
    return (y / x.clamp(min=1e-12)).amax(dim=(2, 3)), seen


def test_pathway_dropout_drops_all_t4_or_all_t5_together(graph2):
    """pathway_dropout=p: per frame the four T4 maps are all kept (x 1/(1-p)) or all zero,
    likewise the four T5 maps, independently of each other; other types pass unchanged;
    eval mode ignores it."""
    dec = FlowDecoder(graph2, const_weight=None, p_dropout=0.0, pathway_dropout=0.5)
    types = list(graph2.output_types)
    t4, t5 = ([types.index(f"{t}{s}") for s in "abcd"] for t in ("T4", "T5"))
    others = [i for i in range(len(types)) if i not in t4 + t5]
    responses = torch.rand(4, 8, graph2.num_nodes, generator=torch.Generator().manual_seed(1)) + 0.1
    ratio, seen = _kept(dec, dec.pathway_dropout, responses)
    torch.testing.assert_close(ratio[:, others], torch.ones_like(ratio[:, others]))
    for group in (t4, t5):
        r = ratio[:, group]
        assert ((r == 0) | (r == 2)).all() and (r == r[:, :1]).all()  # whole group together
        assert 0.2 < (r[:, 0] == 2).float().mean() < 0.8
    assert not torch.equal(ratio[:, t4[0]], ratio[:, t5[0]])  # independent draws
    dec.eval()
    seen.clear()
    dec(responses)
    assert torch.equal(seen[0][0], seen[0][1])
    with pytest.raises(ValueError, match="pathway_dropout must be in"):
        FlowDecoder(graph2, pathway_dropout=-0.5)


def test_type_dropout_by_direction_drops_t4_and_t5_of_a_direction_together(graph2):
    """type_dropout_groups="directions": T4x and T5x are kept (x 1/(1-p)) or dropped together
    per frame, every other type on its own draw."""
    dec = FlowDecoder(graph2, const_weight=None, p_dropout=0.0, type_dropout=0.5,
                      type_dropout_groups="directions")
    types = list(graph2.output_types)
    responses = torch.rand(8, 8, graph2.num_nodes, generator=torch.Generator().manual_seed(1)) + 0.1
    ratio, _ = _kept(dec, dec.input_dropout, responses)
    assert ((ratio == 0) | (ratio == 2)).all()
    for d in "abcd":
        torch.testing.assert_close(ratio[:, types.index(f"T4{d}")], ratio[:, types.index(f"T5{d}")])
    singles = [i for i, t in enumerate(types) if t[:2] not in ("T4", "T5")]
    kept = (ratio[:, singles] == 2).float()
    assert 0.35 < kept.mean() < 0.65
    assert not (kept == kept[:, :1]).all()  # independent draws
    assert not torch.equal(ratio[:, types.index("T4a")], ratio[:, types.index("T4b")])
    with pytest.raises(ValueError, match="type_dropout_groups"):
        FlowDecoder(graph2, type_dropout_groups="pairs")


def test_decoder_rejects_wrong_response_shape(graph2):
    with pytest.raises(ValueError, match="responses must have shape"):
        FlowDecoder(graph2)(torch.zeros(2, 3, 10))


def test_losses_against_hand_computed_values():
    # B = 2, T = 1, n = 2: sample 0 errors (3, 4) and (0, 0); sample 1 errors (1, 0) and (0, 2)
    target = torch.zeros(2, 1, 2, 2)
    pred = torch.zeros(2, 1, 2, 2)
    pred[0, 0, :, 0] = torch.tensor([3.0, 4.0])
    pred[1, 0, :, 0] = torch.tensor([1.0, 0.0])
    pred[1, 0, :, 1] = torch.tensor([0.0, 2.0])
    assert float(epe(pred, target)) == pytest.approx((5 + 0 + 1 + 2) / 4)
    assert float(l2norm(pred, target)) == pytest.approx((5 + math.sqrt(5)) / 2)
    assert float(l2norm(target, pred)) == pytest.approx((5 + math.sqrt(5)) / 2)


def test_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="B, T, 2, n_hexals"):
        epe(torch.zeros(1, 2, 2, 7), torch.zeros(1, 2, 2, 19))
    with pytest.raises(ValueError, match="B, T, 2, n_hexals"):
        l2norm(torch.zeros(1, 2, 3, 7), torch.zeros(1, 2, 3, 7))


def test_running_rms_gradient_ignores_the_scale_of_a_channel():
    """Training mode: the forward value is x / running RMS, the gradient that of x / batch
    RMS -- so the loss's gradient along x itself (rescaling the channel) is zero."""
    norm = RunningRMS(2, momentum=0.5)
    g = torch.Generator().manual_seed(2)
    norm(torch.randn(3, 2, 5, generator=g, dtype=torch.float64))  # running statistics != batch
    x = torch.randn(3, 2, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 5, generator=g, dtype=torch.float64)
    before = norm.mean_square.clone()
    y = norm(x)
    expected_ms = 0.5 * before + 0.5 * x.detach().pow(2).transpose(0, 1).reshape(2, -1).mean(1)
    torch.testing.assert_close(y, x / (expected_ms + norm.eps).sqrt()[:, None])
    (grad,) = torch.autograd.grad((y * w).sum(), x)
    # directional derivative along the channel's own values vanishes
    torch.testing.assert_close((grad * x).sum((0, 2)), torch.zeros(2, dtype=torch.float64),
                               atol=1e-9, rtol=0)  # up to the eps in the RMS
    # and it is the gradient of z / batch RMS(z) times the constant batch RMS / running RMS
    def mean_square(z):
        return z.pow(2).transpose(0, 1).reshape(2, -1).mean(1) + norm.eps

    const = (mean_square(x.detach()) / (expected_ms + norm.eps)).sqrt()[:, None]
    (expected,) = torch.autograd.grad((x * const / mean_square(x).sqrt()[:, None] * w).sum(), x)
    torch.testing.assert_close(grad, expected)
