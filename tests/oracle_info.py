"""`rotq info --json` against independent readers: the gguf package for the SmolLM2 GGUF, the raw
llama2.c header for tinystories-260k, and config.json + safetensors for a saved HF folder."""
import json, os, struct, subprocess, sys, tempfile

ROTQ = os.environ.get("ROTQ", "build/rotq")
SHARED = os.environ.get("ROTQ_SHARED", "../shared")
MODELS = os.environ.get("ROTQ_MODELS", "models")
failures, ran = [], 0


def info(path, *extra):
    out = subprocess.run([ROTQ, "info", path, "--json", *extra], capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"rotq info {path} failed: {out.stderr}")
    return json.loads(out.stdout)


def expect(what, got, want):
    if got != want:
        failures.append(f"{what}: rotq says {got!r}, reference {want!r}")


def check_gguf(path):
    import gguf
    r = gguf.GGUFReader(path)
    arch = r.fields["general.architecture"].contents()
    f = lambda k: r.fields[f"{arch}.{k}"].contents()
    j = info(path)
    expect("gguf arch", j["architecture"], arch)
    expect("gguf hidden", j["hidden"], f("embedding_length"))
    expect("gguf layers", j["layers"], f("block_count"))
    expect("gguf heads", j["heads"], f("attention.head_count"))
    expect("gguf kv heads", j["kv_heads"], f("attention.head_count_kv"))
    expect("gguf intermediate", j["intermediate"], f("feed_forward_length"))
    expect("gguf vocab", j["vocab"], len(r.fields["tokenizer.ggml.tokens"].data))
    expect("gguf tied", j["tied_embeddings"], not any(t.name == "output.weight" for t in r.tensors))
    expect("gguf params", j["parameters"], sum(int(t.n_elements) for t in r.tensors))
    expect("gguf tensor count", j["tensors"], len(r.tensors))
    return j


def check_llama2c(path):
    with open(path, "rb") as fh:
        dim, hidden, layers, heads, kv, vocab, seq = struct.unpack("<7i", fh.read(28))
    j = info(path)
    expect("llama2c arch", j["architecture"], "llama")
    for k, v in [("hidden", dim), ("intermediate", hidden), ("layers", layers), ("heads", heads), ("kv_heads", kv),
                 ("vocab", abs(vocab)), ("max_positions", seq), ("head_dim", dim // heads)]:
        expect(f"llama2c {k}", j[k], v)
    expect("llama2c tied", j["tied_embeddings"], vocab > 0)
    n = (os.path.getsize(path) - 28) // 4 - seq * (dim // heads)  # minus the legacy RoPE tables
    expect("llama2c params", j["parameters"], n)


def check_hf(src):
    from safetensors import safe_open
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "hf")
        p = subprocess.run([ROTQ, "convert", src, out, "--to", "hf"], capture_output=True, text=True)
        if p.returncode != 0:
            raise AssertionError(f"convert {src}: {p.stderr}")
        cfg = json.load(open(os.path.join(out, "config.json")))
        j = info(out)
        for k, ck in [("hidden", "hidden_size"), ("layers", "num_hidden_layers"), ("heads", "num_attention_heads"),
                      ("kv_heads", "num_key_value_heads"), ("intermediate", "intermediate_size"), ("vocab", "vocab_size")]:
            expect(f"hf {k}", j[k], cfg[ck])
        expect("hf arch", cfg["architectures"][0], "LlamaForCausalLM")
        n = 0
        with safe_open(os.path.join(out, "model.safetensors"), "numpy") as f:
            for k in f.keys():
                n += f.get_tensor(k).size
        expect("hf params", j["parameters"], n)


for name, path, fn in [("SmolLM2 GGUF", os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf"), check_gguf),
                       ("tinystories-260k", os.path.join(SHARED, "models/tinystories-260k/model.bin"), check_llama2c),
                       ("tinystories-260k as HF", os.path.join(SHARED, "models/tinystories-260k/model.bin"), check_hf),
                       ("SmolLM2 as HF", os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf"), check_hf)]:
    if not os.path.exists(path):
        print(f"skip {name}: {path} is absent")
        continue
    fn(path)
    ran += 1
    print(f"checked {name}")

# Bad input: unknown architecture and a missing file give a non-zero exit and a message naming the file.
with tempfile.TemporaryDirectory() as d:
    os.makedirs(os.path.join(d, "m"))
    json.dump({"architectures": ["NoSuchModelForCausalLM"], "hidden_size": 8}, open(os.path.join(d, "m", "config.json"), "w"))
    p = subprocess.run([ROTQ, "info", os.path.join(d, "m")], capture_output=True, text=True)
    if p.returncode == 0 or "NoSuchModelForCausalLM" not in p.stderr or "arch" not in p.stderr:
        failures.append(f"unknown architecture not refused clearly: rc={p.returncode} {p.stderr!r}")
    p = subprocess.run([ROTQ, "info", os.path.join(d, "absent.gguf")], capture_output=True, text=True)
    if p.returncode == 0 or "absent.gguf" not in p.stderr:
        failures.append(f"missing file not reported: {p.stderr!r}")
    ran += 1

for f in failures:
    print("FAIL", f)
print(f"oracle_info: {ran} models checked, {len(failures)} failures")
sys.exit(1 if failures else 0)
