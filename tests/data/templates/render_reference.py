#!/usr/bin/env python3
"""Renders a chat template the way Hugging Face transformers does, to make the expected
renderings Hearth's template tests compare with (jinja2's sandbox with trim_blocks and
lstrip_blocks; tojson = json.dumps(ensure_ascii=False)).

    python3 render_reference.py qwen2.5-instruct.jinja qwen2.5-tools.json > qwen2.5-tools.expected

The JSON file holds the template's variables: messages, tools, add_generation_prompt, ...
Needs jinja2 (Debian: python3-jinja2)."""
import json
import sys

from jinja2.sandbox import ImmutableSandboxedEnvironment


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise Exception(message)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
template = env.from_string(open(sys.argv[1], encoding="utf-8").read())
variables = json.load(open(sys.argv[2], encoding="utf-8"))
sys.stdout.write(template.render(**variables))
