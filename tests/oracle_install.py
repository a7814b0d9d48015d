"""The install target and pkg-config file work: install into a temporary prefix, compile a small
program against the public header with `pkg-config --cflags --libs rotq`, and check what it reads
from a model against the model's config.json."""
import json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(__file__))
import random_models

build = os.environ.get("ROTQ_BUILD", "build")
program = r'''
#include <rotq.h>
#include <stdio.h>
int main(int argc, char **argv) {
    rotq_model *m;
    if (argc < 2 || rotq_model_load(argv[1], NULL, &m) != ROTQ_OK) { fprintf(stderr, "%s\n", rotq_last_error()); return 1; }
    rotq_hparams hp;
    rotq_model_hparams(m, &hp);
    printf("%s %lld %lld %lld %lld\n", hp.arch, (long long)hp.hidden, (long long)hp.n_layers, (long long)hp.n_kv_heads,
           (long long)rotq_model_n_params(m));
    rotq_model_free(m);
    return 0;
}
'''
with tempfile.TemporaryDirectory() as tmp:
    prefix = os.path.join(tmp, "prefix")
    subprocess.run(["cmake", "--install", build, "--prefix", prefix], check=True, capture_output=True)
    pcdirs = [os.path.join(r, d) for r, ds, _ in os.walk(prefix) for d in ds if d == "pkgconfig"]
    env = dict(os.environ, PKG_CONFIG_PATH=":".join(pcdirs))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "rotq"], env=env, capture_output=True, text=True, check=True).stdout.split()
    libdir = next(f[2:] for f in flags if f.startswith("-L"))
    src = os.path.join(tmp, "use.c")
    open(src, "w").write(program)
    exe = os.path.join(tmp, "use")
    subprocess.run(["cc", src, *flags, f"-Wl,-rpath,{libdir}", "-o", exe], check=True)
    model = random_models.make("qwen2", os.path.join(tmp, "m"), seed=3)
    cfg = json.load(open(os.path.join(model, "config.json")))
    out = subprocess.run([exe, model], capture_output=True, text=True, check=True).stdout.split()
    want = ["qwen2", str(cfg["hidden_size"]), str(cfg["num_hidden_layers"]), str(cfg["num_key_value_heads"])]
    from safetensors.numpy import load_file
    n = sum(t.size for t in load_file(os.path.join(model, "model.safetensors")).values())
    ok = out[:4] == want and int(out[4]) == n
    print(f"{'ok' if ok else 'FAIL'}: installed library read {out}, expected {want + [str(n)]}")
    sys.exit(0 if ok else 1)
