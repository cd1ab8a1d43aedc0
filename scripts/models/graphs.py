"""Derives the ONNX graphs hippo runs from what the Python packages ship.

    graphs.py fp32 SHIPPED_GRAPH SAFETENSORS OUT
    graphs.py int8 FP32_GRAPH OUT
    graphs.py cross-encoder ENCODER_GRAPH OUT

Every output is a pure function of its inputs and the pinned package versions
(scripts/models/requirements.txt), so scripts/models/models.lock can pin its
SHA-256. Run by scripts/fetch-models in its virtualenv.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save(model, out):
    """Writes `model` to `out` through a temporary file, so a crash leaves no half file."""
    onnx.checker.check_model(model)
    tmp = out + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, out)


def fp32(shipped, safetensors, out):
    """The all-MiniLM-L6-v2 graph in float32.

    The shipped graph stores each weight as int8 plus a per-row scale, dequantised
    by a Cast and a Mul when the session loads it: its compute is float32 with
    rounded weights. This puts the original float32 weights (the safetensors file
    of the sentence-transformers model) in place of each Cast/Mul pair. Weights are
    matched by shape and by their distance to the dequantised int8 (a linear layer's
    weight appears transposed), and every match must be within the int8 rounding.
    """
    from safetensors.numpy import load_file

    model = onnx.load(shipped)
    graph = model.graph
    weights = {k: v for k, v in load_file(safetensors).items() if v.dtype == np.float32 and v.ndim == 2}
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    used, drop_nodes, drop_inits, new_inits = set(), set(), set(), []
    for name, init in inits.items():
        if not (name.endswith("_q") and init.data_type == TensorProto.INT8):
            continue
        base = name[:-2]
        scale = numpy_helper.to_array(inits[base + "_scale"])
        dequantised = numpy_helper.to_array(init).astype(np.float32) * scale
        best = None
        for key, w in weights.items():
            if key in used:
                continue
            for transposed, candidate in ((False, w), (True, w.T)):
                if candidate.shape != dequantised.shape:
                    continue
                err = np.abs(candidate - dequantised).max() / np.abs(candidate).max()
                if best is None or err < best[0]:
                    best = (err, key, candidate)
        # int8 with a per-row scale rounds to within half a step of 1/127 of the row's range
        if best is None or best[0] > 0.5 / 127 + 1e-4:
            sys.exit(f"graphs.py: no float32 weight matches {base} (best {best and best[:2]})")
        used.add(best[1])
        mul = next(n for n in graph.node if n.op_type == "Mul" and base + "_scale" in n.input)
        cast = producer[mul.input[0]]
        assert cast.op_type == "Cast", cast
        drop_nodes.update([mul.output[0], cast.output[0]])
        drop_inits.update([name, base + "_scale"])
        new_inits.append(numpy_helper.from_array(np.ascontiguousarray(best[2]), mul.output[0]))
    if not used:
        sys.exit("graphs.py: the shipped graph has no int8 weights to replace")
    nodes = [n for n in graph.node if n.output[0] not in drop_nodes]
    initializers = [i for i in graph.initializer if i.name not in drop_inits] + new_inits
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    save(model, out)
    print(f"graphs.py: {out}: {len(used)} float32 weights in place of their int8 copies")


def int8(fp32_graph, out):
    """int8 weights per output channel, int8 activations per token.

    onnxruntime's quantize_dynamic quantises the weights per channel, but each
    activation with one scale for the whole [batch, sequence, hidden] tensor
    (DynamicQuantizeLinear): a text's vector then depends on the other texts of its
    batch and on their padding (0.03 per component, measured). Each of those is
    replaced by a symmetric quantisation per token: scale = max|x| over the hidden
    axis / 127, x_q = round(x / scale) + 128 as uint8 with the scalar zero point 128
    (so the fast uint8 x int8 kernels still apply). A token's codes then depend on
    that token alone, and a text's vector is the same alone or in any batch.
    The embedding tables stay float32: a lookup costs nothing to keep exact.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out + ".dynamic.tmp"
    quantize_dynamic(fp32_graph, tmp, per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    model = onnx.load(tmp)
    os.remove(tmp)
    graph = model.graph
    consts = [
        numpy_helper.from_array(np.array(127.0, np.float32), "per_token_127"),
        numpy_helper.from_array(np.array(128.0, np.float32), "per_token_128"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "per_token_eps"),
        numpy_helper.from_array(np.array(128, np.uint8), "per_token_zero_point"),
    ]
    token_scales = {n.output[1] for n in graph.node if n.op_type == "DynamicQuantizeLinear"}
    # quantize_dynamic multiplies the activation scale by the weight's per-channel
    # scale (Mul(x_scale, w_scale)) and applies the product after the integer MatMul.
    combined = {n.output[0]: (n.input[0], n.input[1]) for n in graph.node if n.op_type == "Mul" and n.input[0] in token_scales}
    nodes = []
    for n in graph.node:
        if n.op_type == "DynamicQuantizeLinear":
            x = n.input[0]
            x_q, x_scale, x_zero = n.output
            p = x_q + "_per_token"
            nodes += [
                helper.make_node("Abs", [x], [p + "_abs"]),
                helper.make_node("ReduceMax", [p + "_abs"], [p + "_max"], axes=[-1], keepdims=1),
                helper.make_node("Max", [p + "_max", "per_token_eps"], [p + "_range"]),
                helper.make_node("Div", [p + "_range", "per_token_127"], [x_scale]),
                helper.make_node("Div", ["per_token_127", p + "_range"], [p + "_inverse"]),
                helper.make_node("Mul", [x, p + "_inverse"], [p + "_scaled"]),
                helper.make_node("Round", [p + "_scaled"], [p + "_rounded"]),
                helper.make_node("Add", [p + "_rounded", "per_token_128"], [p + "_shifted"]),
                helper.make_node("Cast", [p + "_shifted"], [x_q], to=TensorProto.UINT8),
                helper.make_node("Identity", ["per_token_zero_point"], [x_zero]),
            ]
        elif n.op_type == "Mul" and n.output[0] in combined:
            continue
        elif n.op_type == "Mul" and n.input[1] in combined:
            # onnxruntime's MatMulIntegerToFloat fusion reads the scale applied after
            # the Cast as per tensor or per column only, and silently misreads a per-token
            # [batch, sequence, 1] one (cosine 0.73 to float32, measured): apply the
            # weight's per-channel scale first (that still fuses), the token's own next.
            x_scale, w_scale = combined[n.input[1]]
            nodes += [
                helper.make_node("Mul", [n.input[0], w_scale], [n.output[0] + "_channel_scaled"]),
                helper.make_node("Mul", [n.output[0] + "_channel_scaled", x_scale], [n.output[0]]),
            ]
        else:
            nodes.append(n)
    if not token_scales:
        sys.exit("graphs.py: quantize_dynamic produced no DynamicQuantizeLinear to rewrite")
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(consts)
    save(model, out)
    print(f"graphs.py: {out}: {len(token_scales)} activations quantised per token")


def cross_encoder(encoder, out):
    """A cross-encoder-shaped graph for tests: the encoder, then a fixed-seed
    Linear(hidden -> 1) on the first token's hidden state, output `logits` [batch, 1].

    It exercises the reranking code path (pair encoding, shapes, batching), not
    relevance: its head is random.
    """
    model = onnx.load(encoder)
    graph = model.graph
    hidden_output = graph.output[0]
    hidden = hidden_output.type.tensor_type.shape.dim[2].dim_value
    rng = np.random.default_rng(20240501)
    weight = (rng.standard_normal((hidden, 1)) * 0.05).astype(np.float32)
    bias = np.array([0.1], np.float32)
    graph.initializer.extend([
        numpy_helper.from_array(np.array(0, np.int64), "head_first_token"),
        numpy_helper.from_array(weight, "head_weight"),
        numpy_helper.from_array(bias, "head_bias"),
    ])
    graph.node.extend([
        helper.make_node("Gather", [hidden_output.name, "head_first_token"], ["head_cls"], axis=1),
        helper.make_node("Gemm", ["head_cls", "head_weight", "head_bias"], ["logits"]),
    ])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1]))
    save(model, out)
    print(f"graphs.py: {out}: logits [batch, 1] from the first token of {hidden_output.name}")


if __name__ == "__main__":
    commands = {"fp32": (fp32, 3), "int8": (int8, 2), "cross-encoder": (cross_encoder, 2)}
    if len(sys.argv) < 2 or sys.argv[1] not in commands or len(sys.argv) != commands[sys.argv[1]][1] + 2:
        sys.exit(__doc__)
    function, _ = commands[sys.argv[1]]
    function(*sys.argv[2:])
