#!/usr/bin/env python3
"""rotq's llama2.c tokenizer.bin path against an independent Python reading of llama2.c's encode.

The reference below follows run.c's `encode` step by step: optional BOS, the dummy-prefix " "
token, one token per UTF-8 "character" as llama2.c cuts them (a byte plus up to three following
continuation bytes), byte fallback to id byte+3 for characters missing from the vocabulary, then
repeatedly merge the leftmost adjacent pair whose concatenation is a vocabulary piece with the
strictly highest score. Texts: the TinyStories excerpt, the Unicode stress text, WikiText-2's first
50 KB. Decoding is checked as run.c's `decode` would print the ids (leading space dropped after BOS,
<0xNN> pieces as raw bytes).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "fixtures", "tok"))
from stress_text import stress_text  # noqa: E402

ROTQ = os.environ.get("ROTQ")
SHARED = os.environ.get("ROTQ_SHARED", os.path.join(HERE, "..", "..", "shared"))
TOKBIN = os.path.join(SHARED, "models", "tinystories-260k", "tokenizer.bin")
MODEL = os.path.join(SHARED, "models", "tinystories-260k", "model.bin")


def read_tokenizer(path):
    data = open(path, "rb").read()
    pos = 4
    pieces, scores = [], []
    while pos < len(data):
        score, length = struct.unpack_from("<fi", data, pos)
        pos += 8
        pieces.append(data[pos:pos + length])
        scores.append(score)
        pos += length
    return pieces, scores


def llama2c_encode(pieces, scores, text, bos):
    lookup = {}
    for i, p in enumerate(pieces):
        lookup.setdefault(p, i)
    tokens = [1] if bos else []
    if text:
        tokens.append(lookup[b" "])
    # run.c stops at the first NUL: it reads a C string
    text = text.split(b"\0", 1)[0]
    buf = b""
    for i, c in enumerate(text):
        if c & 0xC0 != 0x80:
            buf = b""
        buf += bytes([c])
        nxt = text[i + 1] if i + 1 < len(text) else 0
        if nxt & 0xC0 == 0x80 and len(buf) < 4:
            continue
        if buf in lookup:
            tokens.append(lookup[buf])
        else:
            tokens.extend(b + 3 for b in buf)
        buf = b""

    # The merge loop is quadratic per pass; it runs on pieces of text between spaces when no
    # vocabulary piece holds a space past its first byte, since then no merge can join a token
    # to one that starts with a space, and independent stretches merge the same either way.
    start = 1 if bos else 0
    head, body = tokens[:start], tokens[start:]
    cuttable = all(b" " not in p[1:] for p in pieces)
    groups, cur = [], []
    for t in body:
        if cuttable and cur and pieces[t].startswith(b" "):
            groups.append(cur)
            cur = []
        cur.append(t)
    if cur:
        groups.append(cur)
    out = list(head)
    for g in groups:
        while True:
            best, best_id, best_i = -1e10, -1, -1
            for i in range(len(g) - 1):
                idx = lookup.get(pieces[g[i]] + pieces[g[i + 1]])
                if idx is not None and scores[idx] > best:
                    best, best_id, best_i = scores[idx], idx, i
            if best_i < 0:
                break
            g[best_i:best_i + 2] = [best_id]
        out.extend(g)
    return out


def llama2c_decode(pieces, ids):
    out = b""
    prev = -1
    for t in ids:
        p = pieces[t]
        if prev == 1 and p.startswith(b" "):
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            p = bytes([int(p[3:5], 16)])
        out += p
        prev = t
    return out


def main():
    if not ROTQ or not os.path.exists(ROTQ):
        print("SKIP: ROTQ (path of the rotq binary) is not set")
        return 77
    if not os.path.exists(TOKBIN):
        print("SKIP: %s is absent" % TOKBIN)
        return 77
    pieces, scores = read_tokenizer(TOKBIN)
    texts = []
    ts = os.path.join(SHARED, "data", "tinystories", "valid-excerpt.txt")
    if os.path.exists(ts):
        texts.append(("tinystories", open(ts, "rb").read()))
    texts.append(("stress", stress_text(with_nul=False).encode("utf-8")))
    wiki = os.path.join(SHARED, "data", "wikitext-2-raw", "wiki.test.raw")
    if os.path.exists(wiki):
        texts.append(("wikitext-2 50KB", open(wiki, "rb").read()[:50000]))
    texts.append(("invalid utf-8", b"ok \xff\xfe \xe4\xb8 \xf0\x9f\x98 x\x80\x80\x80\x80\x80y \xc3"))
    texts.append(("one char", b"a"))
    texts.append(("empty", b""))
    failures = 0
    with tempfile.TemporaryDirectory(prefix="rotq-tok-") as tmp:
        path = os.path.join(tmp, "t.txt")
        for name, text in texts:
            for bos in (True, False):
                open(path, "wb").write(text)
                args = [ROTQ, "tokenize", "--tokenizer", TOKBIN, "--text", path, "--json"] + (["--bos"] if bos else [])
                r = subprocess.run(args, capture_output=True)
                if r.returncode != 0:
                    print("FAIL %s: rotq failed: %s" % (name, r.stderr.decode(errors="replace")))
                    failures += 1
                    continue
                got = json.loads(r.stdout)["ids"]
                want = llama2c_encode(pieces, scores, text, bos)
                label = "%s%s" % (name, " +bos" if bos else "")
                if got != want:
                    i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
                    print("FAIL %-24s %d vs %d ids, first difference at %d: want %s got %s" % (
                        label, len(want), len(got), i, want[max(0, i - 3):i + 5], got[max(0, i - 3):i + 5]))
                    failures += 1
                    continue
                print("ok   %-24s %6d ids" % (label, len(got)))
                if not bos:
                    continue
                open(path, "w").write(" ".join(map(str, want)))
                r = subprocess.run([ROTQ, "tokenize", "--tokenizer", TOKBIN, "--text", path, "--decode"],
                                   capture_output=True)
                # run.c prints BOS's own piece too; rotq's decode keeps it unless --skip-special
                ref = llama2c_decode(pieces, want)
                if r.returncode != 0 or r.stdout != ref:
                    print("FAIL %-24s decode: %r... vs %r..." % (label, r.stdout[:60], ref[:60]))
                    failures += 1
                else:
                    print("ok   %-24s decode %d bytes" % (label, len(ref)))
    if os.path.exists(MODEL) and failures == 0:
        # the tokenizer reached through the model (tokenizer.bin found beside model.bin)
        r = subprocess.run([ROTQ, "tokenize", MODEL, "--string", "Once upon a time", "--bos", "--json"],
                           capture_output=True)
        want = llama2c_encode(pieces, scores, b"Once upon a time", True)
        if r.returncode != 0 or json.loads(r.stdout)["ids"] != want:
            print("FAIL through model.bin: %s %s" % (r.stdout[:200], r.stderr[:200]))
            failures += 1
        else:
            print("ok   through model.bin            %s" % want)
    print("%d failure(s)" % failures if failures else "all llama2.c tokenizer comparisons passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
