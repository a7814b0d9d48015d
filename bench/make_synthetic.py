"""Writes a random Llama-shaped HF folder (BF16 by default) for rotation benchmarks, streaming one
tensor at a time so the generator itself stays small. usage: make_synthetic.py OUT [--hidden 4096
--layers 32 --intermediate 14336 --heads 32 --kv-heads 8 --vocab 128256 --dtype bf16]"""
import argparse, json, os, struct
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--hidden", type=int, default=4096)
ap.add_argument("--layers", type=int, default=32)
ap.add_argument("--intermediate", type=int, default=14336)
ap.add_argument("--heads", type=int, default=32)
ap.add_argument("--kv-heads", type=int, default=8)
ap.add_argument("--vocab", type=int, default=128256)
ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
a = ap.parse_args()
h, hd = a.hidden, a.hidden // a.heads
shapes = [("model.embed_tokens.weight", (a.vocab, h))]
for l in range(a.layers):
    p = f"model.layers.{l}."
    shapes += [(p + "input_layernorm.weight", (h,)), (p + "self_attn.q_proj.weight", (a.heads * hd, h)),
               (p + "self_attn.k_proj.weight", (a.kv_heads * hd, h)), (p + "self_attn.v_proj.weight", (a.kv_heads * hd, h)),
               (p + "self_attn.o_proj.weight", (h, a.heads * hd)), (p + "post_attention_layernorm.weight", (h,)),
               (p + "mlp.gate_proj.weight", (a.intermediate, h)), (p + "mlp.up_proj.weight", (a.intermediate, h)),
               (p + "mlp.down_proj.weight", (h, a.intermediate))]
shapes += [("model.norm.weight", (h,)), ("lm_head.weight", (a.vocab, h))]
esize = 2 if a.dtype == "bf16" else 4
header, off = {}, 0
for name, s in shapes:
    n = int(np.prod(s)) * esize
    header[name] = {"dtype": "BF16" if a.dtype == "bf16" else "F32", "shape": list(s), "data_offsets": [off, off + n]}
    off += n
header["__metadata__"] = {"format": "pt"}
hj = json.dumps(header).encode()
hj += b" " * (-len(hj) % 8)
os.makedirs(a.out, exist_ok=True)
rng = np.random.default_rng(0)
with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hj)) + hj)
    for name, s in shapes:
        for r0 in range(0, s[0], 1024):  # row blocks keep memory small
            rows = min(1024, s[0] - r0)
            x = (rng.standard_normal((rows,) + s[1:], dtype=np.float32) * (0.02 if len(s) == 2 else 0.1) + (0 if len(s) == 2 else 1))
            if a.dtype == "bf16":
                u = x.view(np.uint32)
                f.write(((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes())
            else:
                f.write(x.tobytes())
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": h, "intermediate_size": a.intermediate,
           "num_hidden_layers": a.layers, "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads,
           "vocab_size": a.vocab, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
           "tie_word_embeddings": False, "torch_dtype": "bfloat16" if a.dtype == "bf16" else "float32"},
          open(os.path.join(a.out, "config.json"), "w"), indent=1)
print(f"wrote {a.out}: {off / 1e9:.2f} GB of {a.dtype}")
