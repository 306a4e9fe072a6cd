#!/usr/bin/env python3
"""Renders chat-template cases with the real jinja2, in exactly the environment Hugging Face transformers builds
(transformers/utils/chat_template_utils.py, _compile_jinja_template), as the reference for the engine's interpreter.

stdin: one case object {"template": text (or "template_file": path), "messages": [...], "tools": [...], "bos_token": ..., "eos_token": ...,
"now": "2024-07-26T00:00:00", "kwargs": {"add_generation_prompt": true, ...}}; prints the render exactly, or exits 1
with the error on stderr.
Or a JSON list of such objects: prints a JSON list with {"output": text} or {"error": message} per case (one process
for many cases keeps the cross-check test fast).
"""
import json
import sys
from datetime import datetime

import jinja2
import jinja2.sandbox
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols


class AssistantTracker(Extension):
    """transformers' {% generation %}...{% endgeneration %} tag (chat_template_utils.py), which marks the assistant's
    tokens for return_assistant_tokens_mask; for rendering it outputs its body as is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def make_env(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: now.strftime(fmt)
    return env


_compiled = {}


def render(case):
    now = datetime.fromisoformat(case["now"]) if case.get("now") else datetime.now()
    # Many cases share a template and a time: compile each pair once.
    if "template" not in case:
        with open(case["template_file"], encoding="utf-8") as f:
            case["template"] = f.read()
    key = (case["template"], now)
    if key not in _compiled:
        _compiled[key] = make_env(now).from_string(case["template"])
    template = _compiled[key]
    variables = {"messages": case["messages"], "tools": case.get("tools"), "documents": None}
    for token in ("bos_token", "eos_token"):
        if case.get(token) is not None:
            variables[token] = case[token]
    variables.update(case.get("kwargs") or {})
    return template.render(**variables)


def main():
    data = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    if isinstance(data, list):
        results = []
        for case in data:
            try:
                results.append({"output": render(case)})
            except Exception as e:  # any failure of the template counts as "fails", as in transformers
                results.append({"error": f"{type(e).__name__}: {e}"})
        sys.stdout.buffer.write(json.dumps(results, ensure_ascii=False).encode("utf-8"))
        return 0
    try:
        output = render(data)
    except Exception as e:
        sys.stderr.write(f"{type(e).__name__}: {e}\n")
        return 1
    sys.stdout.buffer.write(output.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
