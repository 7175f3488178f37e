"""Make docs/overview.png, the README figure: a moving ON edge on the hexagonal eye, the
responses it evokes across the lattice in two cell types, and central-column traces.

Usage: python docs/make_figure.py [--model flow_cpu_threshold | --untrained]
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import flygnn
from flygnn import plotting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="flow_cpu_threshold", help="shipped model")
    parser.add_argument("--untrained", action="store_true", help="the untrained network instead")
    args = parser.parse_args()
    data = flygnn.FlyVisConnectome(extent=15)[0]
    if args.untrained:
        net, name = flygnn.Network(data), "untrained network"
    else:
        net, name = flygnn.load_pretrained(args.model, data=data).network, args.model
    edges = flygnn.stimuli.MovingEdges(speeds=(19,), intensities=(1,), angles=(0,), height=80)
    movie = edges[0][None]
    valid = ~torch.isnan(movie).any(-1)[0]
    movie = movie[:, valid]
    with torch.no_grad():
        resp = flygnn.simulate(net, movie, edges.dt)
    frame = 200 + 40
    g = net.graph
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.4), layout="constrained")
    t = frame * edges.dt - edges.t_pre
    plotting.hex_map(movie[0, frame] - 0.5, ax=axes[0], vmin=-0.5, vmax=0.5,
                     title=f"ON edge moving right, t = {t:.2f} s", label="contrast (luminance - 0.5)")
    for ax, cell in zip(axes[1:3], ("L1", "Mi1")):
        change = resp[0, frame, g.type_slice(cell)] - resp[0, 199, g.type_slice(cell)]
        plotting.hex_map(change, ax=ax, title=f"{cell}: change from grey",
                         label="voltage change (a.u.)")
    time = torch.arange(movie.shape[1]) * edges.dt - edges.t_pre
    cells = ["R1", "L1", "Mi1", "Tm3", "T4c"]
    plotting.traces(time, resp[0][:, g.central_index[[g.cell_types.index(c) for c in cells]]].T,
                    labels=cells, ax=axes[3], title="central column",
                    ylabel="voltage (a.u.)")
    fig.suptitle(f"{name}: responses to a moving ON edge (19 columns/s)")
    fig.get_layout_engine().set(w_pad=0.25, wspace=0.05)
    out = Path(__file__).with_name("overview.png")
    fig.savefig(out, dpi=80, bbox_inches="tight")
    print(out)


if __name__ == "__main__":
    main()
