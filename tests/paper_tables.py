"""The discovered architectures of the paper's Tables 8–10 as data (rows: exp, dw, pw, se, kernel)."""

TABLE8 = {  # latency-guided, netadaptv2_latency; rows 2..18 are blocks b1..b17
    "stem": 16,
    "blocks": [
        (8, 8, 16, 0, 3),
        (48, 48, 20, 16, 5),
        (48, 48, 32, 0, 3),
        (80, 80, 32, 32, 7),
        (112, 80, 40, 32, 3),
        (64, 32, 16, 32, 3),
        (96, 96, 8, 32, 3),
        (192, 192, 128, 64, 5),
        (224, 192, 128, 0, 5),
        (128, 32, 48, 64, 3),
        (0, 0, 0, 0, 3),
        (512, 256, 80, 256, 3),
        (256, 256, 112, 256, 3),
        (512, 512, 64, 256, 5),
        (640, 640, 224, 256, 7),
        (640, 384, 224, 256, 7),
        (896, 512, 224, 256, 5),
    ],
    "last": 1024,
    "hidden": 1792,
}

TABLE9 = {  # MAC-guided, netadaptv2_macs; rows 2..19 are blocks b1..b18 (b1 has no expansion)
    "stem": 24,
    "blocks": [
        (None, 24, 24, 0, 3),
        (64, 48, 32, 24, 5),
        (128, 64, 32, 0, 3),
        (96, 96, 48, 40, 5),
        (128, 80, 56, 40, 3),
        (0, 0, 0, 0, 3),
        (0, 0, 0, 0, 3),
        (224, 224, 96, 80, 5),
        (224, 96, 96, 0, 3),
        (256, 256, 96, 80, 3),
        (0, 0, 0, 0, 3),
        (640, 640, 144, 320, 5),
        (640, 512, 144, 320, 3),
        (0, 0, 0, 0, 3),
        (768, 640, 192, 320, 5),
        (768, 256, 192, 320, 5),
        (896, 768, 192, 320, 7),
        (1152, 1152, 192, 320, 7),
    ],
    "last": 1152,
    "hidden": 2048,
}

# FastDepth (Table 10): filters of every searchable layer in order, with kernel sizes.
# Row 40 lists 28 filters for a 64-filter depthwise layer, which is not on the paper's own
# 9-width grid (multiples of 8); it is represented by the nearest grid value, 32.
TABLE10 = [
    (24, 3),
    (20, 3),
    (48, 1),
    (48, 3),
    (96, 1),
    (96, 3),
    (112, 1),
    (112, 3),
    (256, 1),
    (256, 3),
    (192, 1),
    (192, 3),
    (448, 1),
    (448, 3),
    (448, 1),
    (448, 3),
    (384, 1),
    (384, 3),
    (512, 1),
    (512, 3),
    (384, 1),
    (384, 3),
    (448, 1),
    (448, 3),
    (384, 1),
    (384, 3),
    (768, 1),
    (768, 5),
    (384, 1),
    (320, 5),
    (192, 1),
    (160, 5),
    (112, 1),
    (112, 3),
    (48, 1),
    (32, 3),
    (24, 1),
]


def mnv3_table_arch(net, table):
    """The architecture of ``net`` (netadaptv2_latency / _macs) written in ``table``."""
    names = [s.name for s in net.space.layers]
    filters = dict.fromkeys(names, None)
    kernels = {n: net.space.layers[i].max_kernel for i, n in enumerate(names)}
    filters["b0"] = table["stem"]
    for i, (exp, dw, pw, se, k) in enumerate(table["blocks"], start=1):
        if exp is not None:
            filters[f"b{i}.expand"] = exp
        filters[f"b{i}.dw"], filters[f"b{i}.project"], filters[f"b{i}.se"] = dw, pw, se
        kernels[f"b{i}.dw"] = k
    filters[f"b{len(table['blocks']) + 1}"] = table["last"]
    filters["head.hidden"] = table["hidden"]
    missing = [n for n, f in filters.items() if f is None]
    assert not missing, missing
    return net.space.make([filters[n] for n in names], [kernels[n] for n in names])


#: The shipped architecture files (src/netadapt/model/architectures/) and the tables they hold.
SHIPPED = {
    "netadaptv2_table8": ("netadaptv2_latency", "NetAdaptV2 paper, Table 8: the latency-guided ImageNet network"),
    "netadaptv2_table9": ("netadaptv2_macs", "NetAdaptV2 paper, Table 9: the MAC-guided ImageNet network"),
    "fastdepth_table10": ("fastdepth", "NetAdaptV2 paper, Table 10: the discovered FastDepth network (NYU Depth V2)"),
}


def shipped_architecture(name):
    """(architecture, supernet, JSON text) of the shipped file ``name``, made from the tables above."""
    import json

    import netadapt

    model, title = SHIPPED[name]
    net = netadapt.build_supernet(model, input_size=224) if model == "fastdepth" else netadapt.build_supernet(model)
    if model == "fastdepth":
        arch = net.space.make([f for f, _ in TABLE10], [k for _, k in TABLE10])
    else:
        arch = mnv3_table_arch(net, TABLE8 if name.endswith("8") else TABLE9)
    data = {"title": title, **arch.to_dict(net.space, build=net.build_config())}
    return arch, net, json.dumps(data, indent=1) + "\n"


if __name__ == "__main__":  # python -m tests.paper_tables: rewrite the shipped files
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "src" / "netadapt" / "model" / "architectures"
    folder.mkdir(exist_ok=True)
    for name in SHIPPED:
        (folder / f"{name}.json").write_text(shipped_architecture(name)[2])
        print(folder / f"{name}.json")
