"""The output policy, interruption and CLI conventions (issue 12, items 3, 4, 6 and 8), on random
models made here (no shared data needed):
- outputs: a device node (/dev/full, /dev/null) is refused and stays a device; a symbolic link is
  refused and it and its target stay as they were; an existing GGUF file or model folder is refused,
  replaced with --force (the new contents read back); a non-model folder is never replaced; errors
  writing stdout (`info --json > /dev/full`) exit non-zero; `--dump-logits -` writes stdout.
- tokenizers: rotate warns (before the work) when the model's tokenizer is invalid or absent.
- interruption: SIGTERM while rotate writes leaves no temporary and no output, and the process
  reports the signal; after kill -9 the temporary stays, and the next run to that output removes
  it (saying so) and succeeds.
- conventions: usage errors exit 2 (unknown option, a flag given a value, a bad number), a failed
  verify exits 3, other errors 1; "--" ends the options; `rotq help CMD` prints CMD's help; every
  command has a complete help; docs/cli.md is what scripts/gen_cli_doc.sh makes of the help texts."""
import glob, os, re, shutil, signal, stat, subprocess, sys, tempfile, time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import random_models  # noqa: E402

ROTQ = os.environ.get("ROTQ", "build/rotq")
SOURCE = os.environ.get("ROTQ_SOURCE", os.path.join(os.path.dirname(__file__), ".."))
failures, checked = [], 0


def check(ok, label):
    global checked
    checked += 1
    print(("ok   " if ok else "FAIL ") + label)
    if not ok:
        failures.append(label)


def run(*args, **kw):
    return subprocess.run([ROTQ, *args], capture_output=True, text=True, timeout=600, **kw)


def temporaries(path):
    return glob.glob(glob.escape(path.rstrip("/")) + ".tmp-*")


def outputs(tmp, small):
    gguf = os.path.join(tmp, "a.gguf")
    check(run("convert", small, gguf).returncode == 0, "convert to a new GGUF")
    ids = ["--ids", "1,2,3"]
    for dev in ("/dev/full", "/dev/null"):
        before = os.stat(dev)
        p = run("ppl", gguf, *ids, "--dump-logits", dev)
        after = os.stat(dev)
        check(p.returncode == 1 and "character device" in p.stderr and stat.S_ISCHR(after.st_mode)
              and after.st_rdev == before.st_rdev, f"ppl --dump-logits {dev} refused, still a device: {p.stderr.strip()}")
        p = run("hadamard", "8", "--write", dev)
        check(p.returncode == 1 and stat.S_ISCHR(os.stat(dev).st_mode), f"hadamard --write {dev} refused: {p.stderr.strip()}")
    vocab = random_models.DIMS["vocab"]
    p = subprocess.run([ROTQ, "ppl", gguf, *ids, "--dump-logits", "-"], capture_output=True, timeout=60)
    check(p.returncode == 0 and len(p.stdout) == 3 * vocab * 4 and np.isfinite(np.frombuffer(p.stdout, "<f4")).all(),
          f"--dump-logits - : {len(p.stdout)} bytes = 3 x {vocab} float32")

    # symbolic links: refused, the link and its target untouched
    target = os.path.join(tmp, "target.gguf")
    with open(target, "wb") as f:
        f.write(b"precious")
    link = os.path.join(tmp, "link.gguf")
    os.symlink(target, link)
    for force in ([], ["--force"]):
        p = run("convert", small, link, *force)
        check(p.returncode == 1 and "symbolic link" in p.stderr and os.path.islink(link)
              and open(target, "rb").read() == b"precious", f"convert onto a symlink {force} refused: {p.stderr.strip()}")
    dlink = os.path.join(tmp, "dirlink")
    os.symlink(tmp, dlink)
    p = run("convert", small, dlink)
    check(p.returncode == 1 and "symbolic link" in p.stderr and os.path.islink(dlink), "HF output onto a symlinked folder refused")

    # an existing file: refused, replaced with --force
    other = os.path.join(tmp, "other.gguf")
    with open(other, "wb") as f:
        f.write(b"unrelated")
    p = run("convert", small, other)
    check(p.returncode == 1 and "exists" in p.stderr and "--force" in p.stderr and open(other, "rb").read() == b"unrelated",
          f"convert onto an existing GGUF refused: {p.stderr.strip()}")
    p = run("convert", small, other, "--force")
    check(p.returncode == 0 and open(other, "rb").read(4) == b"GGUF" and not temporaries(other), "--force replaces it")
    p = run("hadamard", "8", "--write", other)
    check(p.returncode == 1 and "exists" in p.stderr, "hadamard --write onto an existing file refused")
    p = run("hadamard", "8", "--write", other, "--force")
    check(p.returncode == 0 and open(other, "rb").read(4) != b"GGUF", "hadamard --write --force replaces it")

    # folders: a model folder is replaced with --force (atomically swapped), another folder never
    hf = os.path.join(tmp, "hf")
    check(run("convert", small, hf).returncode == 0, "convert to a new HF folder")
    p = run("convert", small, hf)
    check(p.returncode == 1 and "not empty" in p.stderr, "an existing model folder refused without --force")
    p = run("convert", gguf, hf, "--force", "--dtype", "f16")
    check(p.returncode == 0 and not temporaries(hf) and '"F16"' in open(os.path.join(hf, "model.safetensors"), "rb").read(4096).decode("latin-1"),
          f"--force replaced the model folder (now f16) and left no temporary: {p.stderr.strip()}")
    docs = os.path.join(tmp, "docs")
    os.mkdir(docs)
    with open(os.path.join(docs, "notes.txt"), "w") as f:
        f.write("mine")
    p = run("convert", small, docs, "--force")
    check(p.returncode == 1 and "not a model folder" in p.stderr and os.path.exists(os.path.join(docs, "notes.txt")),
          f"a folder that is not a model is never replaced: {p.stderr.strip()}")
    p = run("convert", small, gguf.replace(".gguf", ".txt") + "/x.gguf")
    check(p.returncode == 1 and "does not exist" in p.stderr, "output in a missing folder refused")

    # stdout errors
    with open("/dev/full", "w") as full:
        p = subprocess.run([ROTQ, "info", gguf, "--json"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    check(p.returncode == 1 and "standard output" in p.stderr, f"info --json > /dev/full exits 1: {p.stderr.strip()}")
    with open("/dev/full", "w") as full:
        p = subprocess.run([ROTQ, "hadamard", "12"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    check(p.returncode == 1, "hadamard 12 > /dev/full exits 1")
    return gguf


def tokenizer_warnings(tmp, small):
    """A model whose tokenizer is broken or absent is still written (the weights are what rotation
    is about), but never silently: the warning names the problem before the work starts."""
    bad = os.path.join(tmp, "badtok")
    shutil.copytree(small, bad)
    with open(os.path.join(bad, "tokenizer.json"), "w") as f:
        f.write('{"model": {')
    p = run("rotate", bad, os.path.join(tmp, "badtok-rot"), "--quiet")
    check(p.returncode == 0 and "tokenizer.json" in p.stderr and "not valid JSON" in p.stderr and "cannot be read" in p.stderr,
          f"rotate warns about an invalid tokenizer.json: {p.stderr.strip()}")
    l2c = os.path.join(tmp, "l2c")
    os.mkdir(l2c)
    model, _ = random_models.make_llama2c(l2c)
    os.remove(os.path.join(l2c, "tokenizer.bin"))
    for out in ("l2c-rot", "l2c-rot.gguf"):
        p = run("rotate", model, os.path.join(tmp, out), "--quiet")
        check(p.returncode == 0 and "without a tokenizer" in p.stderr, f"rotate {out}: a llama2.c model without tokenizer.bin is said: {p.stderr.strip()}")


def interruption(tmp):
    big = random_models.make("llama", os.path.join(tmp, "big"), seed=3,
                             dims=dict(hidden=512, heads=8, kv_heads=4, head_dim=64, intermediate=1536, layers=8, vocab=8192))
    out = os.path.join(tmp, "big-rotated")

    def start_and_wait_for_temporary():
        proc = subprocess.Popen([ROTQ, "rotate", big, out, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        while not temporaries(out) and proc.poll() is None and time.time() - t0 < 120:
            time.sleep(0.002)
        return proc, bool(temporaries(out))

    proc, seen = start_and_wait_for_temporary()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    check(seen and proc.returncode == -signal.SIGTERM and not temporaries(out) and not os.path.exists(out),
          f"SIGTERM mid-rotate: killed by the signal ({proc.returncode}), no temporary, no output: {err.strip()[-200:]}")
    proc, seen = start_and_wait_for_temporary()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    check(seen and proc.returncode == -signal.SIGINT and not temporaries(out), "SIGINT mid-rotate: the same")

    proc, seen = start_and_wait_for_temporary()
    proc.kill()
    proc.communicate(timeout=120)
    left = temporaries(out)
    check(seen and len(left) == 1, f"kill -9 leaves its temporary ({left})")
    p = run("rotate", big, out, "--quiet")
    check(p.returncode == 0 and "removed" in p.stderr and "interrupted" in p.stderr and left[0] in p.stderr
          and not temporaries(out) and os.path.exists(os.path.join(out, "config.json")),
          f"the next run removes the stale temporary, saying so: {p.stderr.strip()}")
    # a temporary of a process still running is not touched
    live = out + ".tmp-%d-abcdef" % os.getpid()
    os.mkdir(live)
    p = run("rotate", big, out, "--quiet", "--force")
    check(p.returncode == 0 and os.path.isdir(live), "a live process's temporary is left alone")
    os.rmdir(live)


def conventions(tmp, gguf, small):
    def rc(args, want, label, needle=None):
        p = run(*args)
        check(p.returncode == want and (needle is None or needle in p.stderr), f"{label}: exit {p.returncode} (want {want}) {p.stderr.strip()[:160]}")

    rc(["info", gguf, "--bogus"], 2, "unknown option", "unknown option")
    rc(["info", gguf, "--json=1"], 2, "a flag given a value", "takes no value")
    rc(["ppl", gguf, "--text", gguf, "--ctx", "12x"], 2, "a malformed number", "--ctx")
    rc(["verify", gguf, gguf, "--tokens", "99999999999"], 2, "a number out of range", "--tokens")
    rc(["eval", gguf, "--text", gguf, "--w-bits", "12"], 2, "--w-bits 12 (2..8 or 16)", "2..8")
    rc(["frobnicate"], 2, "unknown command")
    rc(["info", os.path.join(tmp, "absent.gguf")], 1, "a missing model is an error, not a usage error")
    rc(["info", "--", "--json"], 1, "after --, '--json' is a model path", "--json")
    other = random_models.make("llama", os.path.join(tmp, "other"), seed=9)
    rc(["verify", small, other, "--tokens", "16"], 3, "verify: models that differ")
    rc(["verify", small, small, "--tokens", "16"], 0, "verify: the same model")
    rc(["hadamard", "1000000"], 1, "hadamard beyond the bound", "4096")
    cmds = ["info", "convert", "hadamard", "ppl", "generate", "rotate", "stats", "verify", "tokenize", "eval", "quantize"]
    for c in cmds:
        a, b = run(c, "--help"), run("help", c)
        check(a.returncode == 0 and a.stdout == b.stdout and a.stdout.startswith("usage: rotq " + c),
              f"rotq help {c} = rotq {c} --help")
        opts = sorted(set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*[a-z0-9]", a.stdout)) - {"--rN"})
        for o in opts:
            if o in ("--help",):
                continue
            p = run(c, o, "--bogus-after")
            check(f"unknown option {o} " not in p.stderr + " " and f"unknown option {o}\n" not in p.stderr,
                  f"{c} {o}: listed in the help and known to the parser")
    gen = subprocess.run([os.path.join(SOURCE, "scripts", "gen_cli_doc.sh"), ROTQ], capture_output=True, text=True, timeout=120)
    doc = open(os.path.join(SOURCE, "docs", "cli.md"), encoding="utf-8").read()
    check(gen.returncode == 0 and gen.stdout == doc, "docs/cli.md is up to date with the help texts (scripts/gen_cli_doc.sh)")


with tempfile.TemporaryDirectory() as tmp:
    small = random_models.make("llama", os.path.join(tmp, "small"), seed=1)
    gguf = outputs(tmp, small)
    tokenizer_warnings(tmp, small)
    interruption(tmp)
    conventions(tmp, gguf, small)

for f in failures:
    print("FAIL", f)
print(f"{checked - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
