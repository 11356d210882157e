"""Post-training quantization of any model: weight-only, dynamic int8 and static int8.

:func:`quantize` returns a quantized copy; the model given is never changed (also when the call
fails: every argument is checked, and all work happens on the copy).

* ``mode="weight"``: per-channel weight-only quantization to 2, 3, 4 or 8 bits (16: half
  precision) with nasviz's own quantizer (:class:`~nasviz.quant.QuantizedWeight`): packed
  codes, scales and zero points are stored; compute is **simulated** (the weight is dequantized
  and the float kernel runs). Works on any model (supernet exports, plain modules, Hugging Face
  models with Linear, Conv1D or stacked-expert weights), with one bit-width or one per layer.
* ``mode="dynamic"``: int8 weights and activations quantized per batch at run time for Linear
  (and GPT-2's Conv1D) layers, through PyTorch's fbgemm kernels: **real** int8 compute, faster
  on CPU.
* ``mode="static"``: int8 weights and activations with ranges calibrated on data, for conv nets
  that torch.fx can trace (the fbgemm backend): **real** int8 kernels.

Why torch.ao's kernels and not torchao: measured with torch 2.13.0 and torchao 0.18.0 (which
installs without changing torch), one CPU thread, ``python -m bench quant``: torchao's CPU int8
paths run slower than fp32 (int8 weight-only 0.15-0.41x / 0.85x the speed at batch 1 / 64,
int8 dynamic 0.06-0.18x, int4 0.16x), while torch.ao's fbgemm dynamic int8 runs faster than
fp32 (1.37-1.39x / 1.03-1.06x on the MLP 64-1024^3-10, 1.75-2.09x / 1.09-1.14x on GPT-2-sized
blocks, on a loaded machine). torch.ao's
Python API is deprecated, so it is only called here, behind nasviz's own API, with its
deprecation warnings silenced.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize

from nasviz.errors import ConfigError, ShapeError
from nasviz.quant._calibration import calibration_batches
from nasviz.quant._modules import FakeQuantize, QuantizedExperts, QuantizedWeight
from nasviz.quant._qtensor import check_bits
from nasviz.quant._targets import Target, _block, find_targets, select

__all__ = ["MODES", "convert", "describe", "is_quantized", "prepare_qat", "quantize"]

MODES = ("weight", "dynamic", "static")
_QUANT_PARAMETRIZATIONS = (QuantizedWeight, QuantizedExperts, FakeQuantize)
_AO_PREFIXES = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")


def _copy(model: nn.Module, plain: bool = False) -> nn.Module:
    from nasviz.prune import copy_model  # a deep copy that shares no parametrized class

    return copy_model(model, plain=plain)


def _is_ao(module: nn.Module) -> bool:
    return type(module).__module__.startswith(_AO_PREFIXES)


def runs_ao_kernels(model: nn.Module) -> bool:
    """Whether ``model`` holds torch.ao quantized modules (``mode="dynamic"`` or
    ``"static"``): packed int8 kernels that torch.export cannot trace."""
    return any(_is_ao(module) for module in model.modules())


def is_quantized(model: nn.Module) -> bool:
    """Whether ``model`` holds quantized weights (nasviz's, fake-quantized ones, or torch.ao
    quantized modules and tensors)."""
    for module in model.modules():
        if _is_ao(module) or isinstance(module, _QUANT_PARAMETRIZATIONS):
            return True
    return any(
        t.is_quantized for t in model.state_dict(keep_vars=True).values() if torch.is_tensor(t)
    )


def _check_model(model: Any, caller: str = "quantize") -> None:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{caller} expects a torch nn.Module, got {type(model).__name__}")
    if is_quantized(model):
        raise ConfigError(
            f"this {type(model).__name__} is already quantized; quantize the full-precision "
            "model instead (quantizing twice would compound the rounding)"
        )


def symmetric_for(bits: int, symmetric: bool | None) -> bool:
    """The scheme of ``bits``-bit codes: ``symmetric`` when given, else symmetric at 8 bits."""
    return bits == 8 if symmetric is None else bool(symmetric)


def _selected(
    model: nn.Module, include: Any, exclude: Any, bits: int | Mapping[str, int]
) -> dict[str, Target]:
    """The quantizable layers ``include`` / ``exclude`` select; a ConfigError when there are
    none or ``bits`` is an empty mapping (the call would return an unquantized copy)."""
    found = find_targets(model)
    if not found:
        raise ConfigError(
            f"this {type(model).__name__} has no quantizable layer: nasviz quantizes Linear, "
            "Conv1d/2d/3d, GPT-2 Conv1D and stacked expert weights, and never a weight shared "
            "by several modules (tied embeddings)"
        )
    targets = select(found, include, exclude)
    if not targets:
        raise ConfigError(
            f"include={include!r} and exclude={exclude!r} leave no layer to quantize; layers: "
            + ", ".join(list(found)[:12])
            + (" ..." if len(found) > 12 else "")
        )
    if isinstance(bits, Mapping) and not bits:
        raise ConfigError("bits={} names no layer; give {layer: bits} or one bit-width for all")
    return targets


def bits_plan(
    targets: Mapping[str, Target], bits: int | Mapping[str, int], what: str = "bits"
) -> dict[str, int]:
    """Layer name -> bit-width for ``targets``: one bit-width for all, or a mapping (layers
    missing from it stay at 32). Unknown layer names and unsupported widths are ConfigErrors."""
    if isinstance(bits, Mapping):
        unknown = [n for n in bits if n not in targets]
        if unknown:
            shown = ", ".join(list(targets)[:12]) + (" ..." if len(targets) > 12 else "")
            raise ConfigError(
                f"{what} names layer(s) {unknown} that the model does not have (or that are not "
                f"quantizable); quantizable layers: {shown}"
            )
        return {n: check_bits(bits.get(n, 32), f"{what}[{n!r}]") for n in targets}
    value = check_bits(bits, what)
    return dict.fromkeys(targets, value)


def _plain(module: nn.Module, attr: str) -> torch.Tensor:
    """The effective weight, with non-quantization parametrizations (pruning masks) baked in."""
    if parametrize.is_parametrized(module, attr):
        parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
    return getattr(module, attr).detach()


def apply_weight_quantization(
    model: nn.Module, plan: Mapping[str, int], symmetric: bool | None
) -> nn.Module:
    """Quantizes the weights of ``plan`` (layer -> bits) of ``model`` in place (a copy)."""
    targets = find_targets(model)
    stacks: dict[tuple[str, str], dict[int, int]] = {}
    for name, bits in plan.items():
        t = targets[name]
        if t.expert is not None:
            stacks.setdefault((t.module_name, t.attr), {})[t.expert] = bits
            continue
        if bits == 32:
            continue
        w = _plain(t.module, t.attr)
        q = QuantizedWeight(w, bits, t.reduce, symmetric_for(bits, symmetric))
        parametrize.register_parametrization(t.module, t.attr, q, unsafe=True)
    for (module_name, attr), per_expert in stacks.items():
        if all(b == 32 for b in per_expert.values()):
            continue
        module = model.get_submodule(module_name)
        w = _plain(module, attr)
        widths = [per_expert.get(j, 32) for j in range(w.shape[0])]
        sym = [symmetric_for(b, symmetric) for b in widths]
        reduce = targets[f"{module_name}.{attr}.0" if module_name else f"{attr}.0"].reduce
        q = QuantizedExperts(w, widths, reduce, sym)
        parametrize.register_parametrization(module, attr, q, unsafe=True)
    return model


@contextlib.contextmanager
def _ao() -> Iterator[str]:
    """torch.ao's quantized engine set to fbgemm (x86) or qnnpack (ARM) for the duration, its
    deprecation warnings silenced; yields the engine name."""
    engines = torch.backends.quantized.supported_engines
    engine = next((e for e in ("fbgemm", "x86", "qnnpack") if e in engines), None)
    if engine is None:
        raise ConfigError(
            f"this PyTorch build has no quantized CPU engine (supported: {engines}); use "
            "mode='weight'"
        )
    before = torch.backends.quantized.engine
    try:
        torch.backends.quantized.engine = engine
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", module="torch.ao")
            warnings.filterwarnings("ignore", message=".*deprecated.*")
            yield engine
    finally:
        torch.backends.quantized.engine = before


def _conv1d_as_linear(model: nn.Module, target: Target) -> None:
    """Replaces a Hugging Face Conv1D (weight (in, out)) with the equal nn.Linear."""
    old = target.module
    w = _plain(old, "weight")
    new = nn.Linear(w.shape[0], w.shape[1], bias=old.bias is not None).to(w.dtype)
    with torch.no_grad():
        new.weight.copy_(w.t())
        if old.bias is not None:
            new.bias.copy_(old.bias)
    parent, _, attr = target.module_name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)


def _read_directly(model: nn.Module) -> set[int]:
    """ids of Linear layers whose parent reads their weight tensor itself, so a torch.ao int8
    module (whose ``weight`` is a method) cannot replace them: MultiheadAttention's out_proj and
    the feed-forward layers of TransformerEncoderLayer's fast path."""
    found = set()
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention):
            found.add(id(module.out_proj))
        if isinstance(module, nn.TransformerEncoderLayer):
            found.update((id(module.linear1), id(module.linear2)))
    return found


def dynamic_layers(
    model: nn.Module, targets: Mapping[str, Target], names: Iterable[str]
) -> list[str]:
    """The layers of ``names`` that dynamic int8 quantizes (Linear and GPT-2 Conv1D, not those
    their parent reads directly, see :func:`_read_directly`); a ConfigError for a Linear
    subclass torch.ao would silently leave in fp32 (it swaps exact types only), such as a
    supernet's elastic layers, and for weights that are not float32."""
    from torch.ao.quantization.quantization_mappings import (
        get_default_dynamic_quant_module_mappings,
    )

    swapped = get_default_dynamic_quant_module_mappings()
    direct = _read_directly(model)
    chosen = [
        n
        for n in names
        if targets[n].kind in ("Linear", "Conv1D") and id(targets[n].module) not in direct
    ]
    wide = [n for n in chosen if _current(targets[n]).dtype != torch.float32]
    if wide:
        raise ConfigError(
            f"int8 kernels take float32 layers; layer {wide[0]!r} holds "
            f"{_current(targets[wide[0]]).dtype} weights: quantize model.float() (a copy) instead"
        )
    odd = [
        n
        for n in chosen
        if targets[n].kind == "Linear"
        and parametrize.type_before_parametrizations(targets[n].module) not in swapped
    ]
    if odd:
        raise ConfigError(
            f"dynamic int8 runs torch.ao's kernels, which replace nn.Linear itself and no "
            f"subclass: layer {odd[0]!r} is of class "
            f"{parametrize.type_before_parametrizations(targets[odd[0]].module).__name__}"
            + (f" (and {len(odd) - 1} more)" if len(odd) > 1 else "")
            + "; quantize a plain model (a supernet's net.export(arch)) or exclude= those layers"
        )
    return chosen


def _dynamic(model: nn.Module, names: list[str], targets: Mapping[str, Target]) -> nn.Module:
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    for name in names:
        if targets[name].kind == "Conv1D":
            _conv1d_as_linear(model, targets[name])
    with _ao():
        return quantize_dynamic(
            model,
            dict.fromkeys(names, per_channel_dynamic_qconfig),
            dtype=torch.qint8,
            inplace=True,
        )


def _static(
    model: nn.Module, names: list[str], targets: Mapping[str, Target], data: Any, samples: int
) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if data is None:
        raise ConfigError(
            "mode='static' needs calibration= data (a nasviz Dataset or Split, a tensor of "
            "inputs or an iterable of batches) to measure activation ranges"
        )
    batches = calibration_batches(data, samples)
    model.eval()
    with torch.no_grad():
        try:
            model(batches[0])
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            raise ShapeError(
                f"calibration inputs of shape {tuple(batches[0].shape)} do not fit the model: {exc}"
            ) from exc
    with _ao() as engine:
        mapping = get_default_qconfig_mapping(engine)
        for name in targets:
            if name not in names:
                mapping.set_module_name(targets[name].module_name, None)
        try:
            prepared = prepare_fx(model, mapping, example_inputs=(batches[0],))
        except Exception as exc:  # torch.fx raises many kinds on untraceable code
            raise ConfigError(
                f"static quantization needs a model torch.fx can trace; tracing "
                f"{type(model).__name__} failed ({type(exc).__name__}: {exc}); use mode='dynamic' "
                "or mode='weight'"
            ) from exc
        with torch.no_grad():
            for x in batches:
                if tuple(x.shape[1:]) != tuple(batches[0].shape[1:]):
                    raise ShapeError(
                        f"calibration batches must share one input shape; got "
                        f"{tuple(batches[0].shape)} and {tuple(x.shape)}"
                    )
                prepared(x)
        return convert_fx(prepared)


def quantize(
    model: nn.Module,
    bits: int | Mapping[str, int] = 8,
    *,
    mode: str = "weight",
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    symmetric: bool | None = None,
    calibration: Any = None,
    samples: int = 512,
) -> nn.Module:
    """A quantized copy of ``model`` (``model`` itself is never changed).

    Args:
        model: any ``nn.Module`` that is not quantized yet.
        bits: one bit-width for every selected layer, or ``{layer: bits}`` (other layers stay at
            full precision). ``mode="weight"``: 2, 3, 4, 8, 16 (half) or 32 (unchanged);
            ``"dynamic"`` and ``"static"``: 8.
        mode: ``"weight"``, ``"dynamic"`` or ``"static"`` (see the module docstring).
        include, exclude: layer names or glob patterns (``describe(model)`` lists the layers).
        symmetric: weight mode: symmetric codes (no zero points) or affine ones; None chooses
            symmetric at 8 bits and affine below.
        calibration: static mode: inputs to measure activation ranges on (a nasviz Dataset uses
            its train split).
        samples: static mode: calibration examples used at most.

    Raises:
        ConfigError: ``model`` is already quantized, a mode, bit-width or layer name is not
            allowed, or the model cannot be quantized that way.
        ShapeError: calibration inputs do not fit the model.
    """
    _check_model(model)
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    if symmetric is not None and not isinstance(symmetric, bool):
        raise ConfigError(f"symmetric must be True, False or None, got {symmetric!r}")
    targets = _selected(model, include, exclude, bits)
    if mode == "weight":
        plan = bits_plan(targets, bits)
        return apply_weight_quantization(_copy(model), plan, symmetric)
    plan = bits_plan(targets, bits)
    wrong = sorted({b for b in plan.values() if b != 8})
    if wrong and not isinstance(bits, Mapping):
        raise ConfigError(f"mode={mode!r} quantizes to 8 bits (int8); got bits={bits}")
    names = [n for n, b in plan.items() if b == 8]
    if mode == "dynamic":
        names = dynamic_layers(model, targets, names)
        if not names or "" in names:
            raise ConfigError(
                "mode='dynamic' quantizes Linear layers inside a model (not those attention "
                "layers read directly: MultiheadAttention's out_proj, TransformerEncoderLayer's "
                f"linear1/linear2); none were selected (quantizable layers: {list(targets)[:12]})"
            )
        new = _copy(model, plain=True)  # pruning masks baked in: torch.ao swaps plain layers
        return _dynamic(new, names, find_targets(new))
    return _static(_copy(model, plain=True), names, targets, calibration, samples)


def prepare_qat(
    model: nn.Module,
    bits: int | Mapping[str, int] = 8,
    *,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    symmetric: bool | None = None,
) -> nn.Module:
    """A copy of ``model`` whose selected weights are fake-quantized (:class:`FakeQuantize`):
    forward passes see rounded weights, gradients reach the float weights (straight-through),
    so any training loop fine-tunes it for quantization. :func:`convert` stores the result.
    Arguments as in :func:`quantize` (weight mode); stacked experts are not supported here."""
    _check_model(model)
    targets = _selected(model, include, exclude, bits)
    plan = bits_plan(targets, bits)
    stacked = [n for n, b in plan.items() if targets[n].expert is not None and b != 32]
    if stacked:
        raise ConfigError(
            f"prepare_qat does not fake-quantize stacked experts ({stacked[:3]} ...); exclude them"
        )
    new = _copy(model)
    found = find_targets(new)
    for name, b in plan.items():
        if b != 32:
            t = found[name]
            _plain(t.module, t.attr)
            fq = FakeQuantize(b, t.reduce, symmetric_for(b, symmetric))
            parametrize.register_parametrization(t.module, t.attr, fq)
    return new


def convert(model: nn.Module) -> nn.Module:
    """A copy of a :func:`prepare_qat` model with every fake-quantized weight stored as a
    :class:`QuantizedWeight` on the same grid (outputs unchanged up to float rounding)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"convert expects a torch nn.Module, got {type(model).__name__}")
    found = [
        (m, attr, p[0])
        for m in model.modules()
        if parametrize.is_parametrized(m)
        for attr, p in m.parametrizations.items()
        if isinstance(p[0], FakeQuantize)
    ]
    if not found:
        raise ConfigError(
            "convert needs a model from prepare_qat (it has no fake-quantized weights)"
        )
    new = _copy(model)
    for m in new.modules():
        if not parametrize.is_parametrized(m):
            continue
        for attr in list(m.parametrizations):
            fq = m.parametrizations[attr][0]
            if isinstance(fq, FakeQuantize):
                w = m.parametrizations[attr].original.detach()
                parametrize.remove_parametrizations(m, attr, leave_parametrized=False)
                q = QuantizedWeight(w, fq.bits, fq.reduce, fq.symmetric)
                parametrize.register_parametrization(m, attr, q, unsafe=True)
    return new


def describe(model: nn.Module) -> pd.DataFrame:
    """One row per quantizable or quantized layer: ``layer``, ``block``, ``kind``, ``weights``,
    ``bits``, ``scheme`` (symmetric/affine/half/float), ``kernel`` ("real" for int8 kernels,
    "simulated" for dequantize-then-float, "float" when not quantized) and ``bytes`` (the
    weight's stored bytes with scales and zero points)."""
    from nasviz.quant._bytes import tensor_bytes

    if not isinstance(model, nn.Module):
        raise ConfigError(f"describe expects a torch nn.Module, got {type(model).__name__}")
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    rows, places = [], []  # places: each row's module in model order
    for t in find_targets(model).values():
        places.append(order[t.module_name])
        q = _quantizer(t)
        if q is None:
            w = _current(t)
            rows.append(_row(t, w.numel(), 32, "float", "float", tensor_bytes(w)))
        elif isinstance(q, FakeQuantize):
            w = _current(t)
            rows.append(_row(t, w.numel(), q.bits, _name(q), "simulated", tensor_bytes(w)))
        else:
            scheme = _name(q) if q.bits < 16 else ("half" if q.bits == 16 else "float")
            kernel = "simulated" if q.bits < 32 else "float"
            rows.append(_row(t, q.numel, q.bits, scheme, kernel, q.stored_bytes()))
    for name, module in model.named_modules():
        if _is_ao(module) and callable(getattr(module, "weight", None)):
            places.append(order[name])
            w = module.weight()
            symmetric = "symmetric" in str(w.qscheme()) or not _zero_points(w).any()
            scheme = "symmetric" if symmetric else "affine"
            rows.append(
                {
                    "layer": name,
                    "block": _block(model, name),
                    "kind": module._get_name(),
                    "weights": w.numel(),
                    "bits": 8,
                    "scheme": scheme,
                    "kernel": "real",
                    "bytes": tensor_bytes(w),
                }
            )
    rows = [row for _, row in sorted(zip(places, rows, strict=True), key=lambda p: p[0])]
    columns = ["layer", "block", "kind", "weights", "bits", "scheme", "kernel", "bytes"]
    return pd.DataFrame(rows, columns=columns)


def _zero_points(w: torch.Tensor) -> torch.Tensor:
    """The zero points of a torch quantized tensor (per channel or per tensor)."""
    if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        return w.q_per_channel_zero_points()
    return torch.tensor([w.q_zero_point()])


def _name(q: Any) -> str:
    return "symmetric" if q.symmetric else "affine"


def _row(t: Target, weights: int, bits: int, scheme: str, kernel: str, nbytes: int) -> dict:
    return {
        "layer": t.name,
        "block": t.block,
        "kind": t.kind,
        "weights": weights,
        "bits": bits,
        "scheme": scheme,
        "kernel": kernel,
        "bytes": nbytes,
    }


def _quantizer(t: Target) -> Any:
    if not parametrize.is_parametrized(t.module, t.attr):
        return None
    p = t.module.parametrizations[t.attr][0]
    if isinstance(p, QuantizedExperts):
        return p.experts[t.expert]
    return p if isinstance(p, QuantizedWeight | FakeQuantize) else None


def _current(t: Target) -> torch.Tensor:
    w = (
        t.module.parametrizations[t.attr].original
        if parametrize.is_parametrized(t.module, t.attr)
        else getattr(t.module, t.attr)
    )
    return w if t.expert is None else w[t.expert]
