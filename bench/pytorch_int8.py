"""Probe: can PyTorch's own tooling quantise medseg's 3D U-Net to int8?

`medseg export --quantize int8` quantises the ONNX graph (QDQ, onnxruntime). The issue asked
to decide between that and PyTorch's own tooling by measurement; this script tries both of
PyTorch's static post-training routes on the Hippocampus-sized U-Net and prints how many
operators each one quantised:

1. FX graph mode (``torch.ao.quantization.quantize_fx``, the x86 backend);
2. PT2E (``torch.export`` + torchao's ``X86InductorQuantizer``, the route PyTorch now
   recommends; its int8 kernels run under ``torch.compile``), on the U-Net and, as a
   control, on a single Conv2d.

torchao is not a dependency of medseg: ``pip install --no-deps torchao`` first (measured with
torchao 0.18.0 and torch 2.13.0). Usage: python bench/pytorch_int8.py
"""

from __future__ import annotations

import warnings

import torch

from medseg.nn import build_network


def quantised_operators(module: torch.nn.Module) -> int:
    """The quantise/dequantise calls in an exported, converted graph."""
    return sum("quantize" in str(node.target) for node in module.graph.nodes)


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    features = [16, 32, 64, 128]
    strides = [[1, 1, 1]] + [[2, 2, 2]] * 3
    network = build_network("unet", 1, 3, 3, features, strides, [[3, 3, 3]] * 4).eval()
    window = torch.randn(1, 1, 40, 56, 40)
    print(f"torch {torch.__version__}; U-Net features 16-128, window 40x56x40")
    try:
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import prepare_fx

        prepare_fx(network, get_default_qconfig_mapping("x86"), (window,))
        print("FX graph mode: traced")
    except Exception as error:  # the probe reports whatever stops it
        print(f"FX graph mode: fails to trace the U-Net ({type(error).__name__}: "
              f"{str(error).splitlines()[0][:90]})")  # fmt: skip
    try:
        import torchao
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86
    except ImportError:
        print("PT2E: torchao is not installed (pip install --no-deps torchao)")
        return
    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    control = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3)).eval()
    cases = {"the 3D U-Net": (network, window), "one Conv2d (control)": (control,
             torch.randn(1, 1, 16, 16))}  # fmt: skip
    for name, (module, example) in cases.items():
        exported = torch.export.export(module, (example,)).module()
        prepared = prepare_pt2e(exported, quantizer)
        prepared(example)
        converted = convert_pt2e(prepared)
        calls = [str(n.target) for n in converted.graph.nodes if n.op == "call_function"]
        operators = sorted({c for c in calls if "quantize" not in c})
        print(f"PT2E (torchao {torchao.__version__}) on {name}: "
              f"{quantised_operators(converted)} quantise/dequantise calls; other operators: "
              f"{', '.join(o.removeprefix('aten.') for o in operators)}")  # fmt: skip


if __name__ == "__main__":
    main()
