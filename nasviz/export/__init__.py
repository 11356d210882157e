"""Deployable exports of any model: ``torch.export`` programs and ONNX files.

* :func:`program` — ``torch.export.export`` in eval mode with nasviz's errors.
* :func:`onnx` — an ONNX file through ``torch.export`` (needs the ``deploy`` extra).

Every static module a supernet exports (``net.export(arch)``: ElasticMLP, ElasticCNN,
ElasticTransformer, MoE FFNs included) passes through both; so does any module whose forward
``torch.export`` can trace.
"""

from __future__ import annotations

from nasviz.export._onnx import ExampleInput, as_inputs, onnx, program

__all__ = ["ExampleInput", "as_inputs", "onnx", "program"]
