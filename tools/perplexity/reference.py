#!/usr/bin/env python3
"""llama.cpp's perplexity and per-token log-probabilities, computed from llama.cpp's own logits.

Drives the oracle (llama_oracle.py, which runs llama.cpp's libllama; see the shared oracle README) and applies
llama-perplexity's method (tools/perplexity/perplexity.cpp, function `perplexity`) to the logits it returns:
  - the file is read as llama.cpp's -f reads it (one trailing newline dropped) and tokenized with BOS when the
    vocabulary adds one, control-token text as plain text;
  - n_chunk = tokens / ctx (at most --chunks); each chunk runs in a fresh cache with its first token replaced by BOS;
  - the logits at i predict token i+1 for i in [ctx/2, ctx-1); nll is summed in double; ppl = exp(nll / count).
With --prompt it also writes every token's log-probability for a short text (log-softmax of the logits before it).

The engine's tests read the JSON this writes; they never run the oracle. Standard library only.

usage: reference.py --oracle /path/llama_oracle.py -m MODEL.gguf -f TEXT.txt -c 128 [--chunks N]
                    [--prompt "Once upon a time"] -o OUT.json
"""
import argparse, json, math, os, struct, subprocess, sys, tempfile


def oracle(args, *command):
    out = subprocess.run([sys.executable, args.oracle, *command], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def logits_rows(args, tokens):
    """Every row of llama.cpp's logits for the tokens (exact mode: F32 KV cache, flash attention off)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.f32")
        meta = oracle(args, "logits", "-m", args.model, "--tokens", " ".join(map(str, tokens)), "--all",
                      "--kv-type", "f32", "--flash-attn", "off", "-o", path)
        vocab = meta["n_vocab"]
        data = open(path, "rb").read()
    values = struct.unpack(f"<{len(data) // 4}f", data)
    assert len(values) == len(tokens) * vocab, (len(values), len(tokens), vocab)
    return [values[i * vocab:(i + 1) * vocab] for i in range(len(tokens))]


def log_softmax(row, token):
    """As perplexity.cpp's log_softmax: max-subtracted, the exponentials summed in double."""
    top = max(row)
    return row[token] - top - math.log(sum(math.exp(x - top) for x in row))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--oracle", required=True)
    p.add_argument("-m", "--model", required=True)
    p.add_argument("-f", "--file", required=True)
    p.add_argument("-c", "--ctx", type=int, default=512)
    p.add_argument("--chunks", type=int, default=-1)
    p.add_argument("--prompt")
    p.add_argument("-o", "--out", required=True)
    args = p.parse_args()

    text = open(args.file, encoding="utf-8", newline="").read()
    if text.endswith("\n"):
        text = text[:-1]
    tokens = oracle(args, "tokenize", "-m", args.model, "--text", text, "--no-parse-special")["tokens"]
    with_bos = oracle(args, "tokenize", "-m", args.model, "--text", "x", "--no-parse-special")["tokens"]
    without_bos = oracle(args, "tokenize", "-m", args.model, "--text", "x", "--no-parse-special", "--no-bos")["tokens"]
    bos = with_bos[0] if len(with_bos) > len(without_bos) else None

    ctx = args.ctx
    if len(tokens) < 2 * ctx:
        sys.exit(f"{len(tokens)} tokens: need at least {2 * ctx}")
    n_chunk = len(tokens) // ctx if args.chunks < 0 else min(args.chunks, len(tokens) // ctx)
    first = ctx // 2
    nll = nll2 = 0.0
    count = 0
    running = []
    for c in range(n_chunk):
        chunk = tokens[c * ctx:(c + 1) * ctx]
        if bos is not None:
            chunk[0] = bos
        rows = logits_rows(args, chunk)
        for i in range(first, ctx - 1):
            v = -log_softmax(rows[i], chunk[i + 1])
            nll += v
            nll2 += v * v
        count += ctx - first - 1
        running.append(math.exp(nll / count))
    mean = nll / count
    ppl = math.exp(mean)
    var = nll2 / count - mean * mean
    result = {
        "model": os.path.basename(args.model),
        "text_file": os.path.basename(args.file),
        "ctx": ctx,
        "text_tokens": len(tokens),
        "chunks": n_chunk,
        "scored_tokens": count,
        "perplexity": ppl,
        "uncertainty": math.sqrt(var / (count - 1)) * ppl if var > 0 else 0.0,
        "running_perplexity": running,
        "reference": "llama.cpp v0.5.0 (de3ff81) logits via llama_oracle.py, F32 KV cache, flash attention off; "
                     "llama-perplexity's method applied by tools/perplexity/reference.py",
    }
    if args.prompt is not None:
        ids = oracle(args, "tokenize", "-m", args.model, "--text", args.prompt, "--no-parse-special")["tokens"]
        rows = logits_rows(args, ids)
        result["prompt"] = {
            "text": args.prompt,
            "tokens": ids,
            "log_probabilities": [log_softmax(rows[i], ids[i + 1]) for i in range(len(ids) - 1)],
            "most_likely": [max(range(len(r)), key=r.__getitem__) for r in rows[:-1]],
        }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(tmp, args.out)
    print(json.dumps({k: result[k] for k in ("model", "perplexity", "scored_tokens", "chunks", "running_perplexity")}))


if __name__ == "__main__":
    main()
