#!/usr/bin/env python3
"""make-semantics.py: the Jinja semantics cases of test-chat-template, with
the text Python's jinja2 (set up as transformers sets it up) renders for
each, written to semantics.json beside this script.

    python3 tests/chat-template/make-semantics.py   # needs jinja2 (Debian: python3-jinja2)
"""
import json
import os
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.exceptions import TemplateError
def raise_exception(m): raise TemplateError(m)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
V = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": " Hi there "}, {"role": "assistant", "content": "A"}],
     "n": 7, "s": "héllo wörld", "d": {"b": 1, "a": [1, 2.5, None, True]}, "t": "a,b,,c"}
cases = [
 "{{ messages[1:] | length }}|{{ messages[::-1][0].role }}|{{ messages[-1]['content'] }}",
 "{{ s[1:4] }}|{{ s[::-1] }}|{{ s[-1] }}|{{ s | length }}|{{ s[:100] }}|{{ s[7:2] }}|{{ s[::2] }}",
 "{% for m in messages %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex0 }} {% endfor %}",
 "{% set x = 1 %}{% for m in messages %}{% if loop.first %}{% set x = 5 %}{% endif %}{{ x }}{% set x = x + 1 %}{% endfor %}{{ x }}",
 "{% set ns = namespace(c=0, names='') %}{% for m in messages %}{% set ns.c = ns.c + 1 %}{% set ns.names = ns.names ~ m.role[0] %}{% endfor %}{{ ns.c }}{{ ns.names }}",
 "{% for m in messages if m.role != 'system' %}{{ m.role }}{{ loop.length }}{% else %}none{% endfor %}{% for x in [] %}x{% else %}empty{% endfor %}",
 "{{ messages[1].content | trim }}|{{ 'xxhixx'.strip('x') }}|{{ '  a b  '.lstrip() }}|{{ '  a b  '.rstrip() }}.",
 "{{ t.split(',') }}|{{ ' a  b\tc '.split() }}|{{ t.split(',', 1) }}|{{ 'a</think>b'.split('</think>')[-1] }}",
 "{{ s.upper() }}|{{ s | upper }}|{{ 'ABC' | lower }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}",
 "{{ s.startswith('hé') }}{{ s.endswith('x') }}{{ s.startswith(('x', 'h')) }}|{{ 'ab' in s }}{{ 'wö' in s }}{{ 'a' in d }}{{ 3 not in [1, 2] }}",
 "{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ d | tojson(sort_keys=true) }}|{{ 'é\"\\n' | tojson }}",
 "{{ d }}|{{ [1, 'a', none, true, 2.5] }}|{{ none }}|{{ true }}|{{ 1.0 }}|{{ 1e20 }}|{{ 0.0001 }}|{{ 'it''s' }}|{{ [\"it's\"] }}",
 "{{ n // 2 }} {{ n / 2 }} {{ n % 3 }} {{ -n // 2 }} {{ -n % 3 }} {{ 2 ** 10 }} {{ n * 'ab' }} {{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }}",
 "{{ 'a' ~ 1 ~ none ~ undefined_var }}|{{ [1] + [2] }}|{{ 'x' if n > 5 else 'y' }}|{{ 'x' if n < 5 }}|{{ 1 < n < 10 }}{{ 1 < n > 10 }}",
 "{{ undefined_var is defined }}{{ n is defined }}{{ none is none }}{{ s is string }}{{ d is mapping }}{{ n is number }}{{ n is integer }}{{ n is odd }}{{ n is even }}{{ true is boolean }}{{ false is false }}{{ n is not string }}",
 "{{ undefined_var | default('dflt') }}|{{ '' | default('e', true) }}|{{ '' | default('e') }}|{{ d.missing | default(3) }}|{{ d.get('b') }}{{ d.get('z', 9) }}{{ d.get('z') }}",
 "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d | items %}{{ k }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}{{ d.keys() | list }}{{ d.values() | list | length }}",
 "{{ ['a', 'b'] | join(', ') }}|{{ [1, 2] | join }}|{{ '-'.join(['x', 'y']) }}|{{ 'aXbX' | replace('X', '.') }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ [3, 1] | first }}{{ [3, 1] | last }}{{ 'xyz' | reverse }}{{ [1, 2] | reverse | list }}",
 "{{ '42' | int + 1 }}{{ 'x' | int }}{{ 3.9 | int }}{{ -3 | abs }}{{ 5 | string ~ '!' }}{{ range(3) | list }}{{ range(1, 10, 4) | list }}{{ dict(a=1) }}",
 "  {% if true %}\n    yes\n  {% endif %}\n{# comment #}\nline {{- ' x ' -}} end\n  {%- if true %} a {% endif -%}  \n  tail\n\n",
 "{%+ if true %}kept{% endif %}\n{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}\n",
 "{{ 'tab\\there' }}|{{ \"q'\" }}|{{ '\\u00e9\\x41' }}|{{ 'a' 'b' }}|{{ 'multi\nline' }}",
 "{{ not n == 7 }}{{ not (n == 7 and false) }}{{ none or 'x' }}{{ 0 and 1 }}{{ [] or [1] }}{{ n > 3 and s }}",
 "{% for m in messages %}{% if loop.index0 == 1 %}{% continue %}{% endif %}{{ m.role }}{% if m.role == 'assistant' %}{% break %}{% endif %}.{% endfor %}|{% for i in [1, 2, 3] %}{% for j in [1, 2] %}{% if j == 2 %}{% break %}{% endif %}{{ i }}{{ j }}{% endfor %}{% endfor %}",
 "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}|{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | join(',') }}|{{ messages | selectattr('content') | list | length }}|{{ [{'a': none}, {'a': 1}] | selectattr('a', 'none') | list }}",
 "{{ messages | length > 2 }}{{ messages[0] == {'role': 'system', 'content': 'S'} }}{{ [1, 2] == [1, 2.0] }}{{ 'b' > 'a' }}{{ 2 >= 2.0 }}",
 "{{ {'a': 1, 'b': {'c': [1]}}['b']['c'][0] }}{{ [[1, 2], [3]][0][-1] }}{{ (1, 2)[1] }}{{ ()|length }}{{ 'abc'[5] }}|{{ messages[9] is defined }}",
]
out = []
for c in cases:
    try:
        r = env.from_string(c).render(**V)
    except Exception as e:
        r = "ERROR " + type(e).__name__ + ": " + str(e)
    out.append((c, r))
    assert not r.startswith("ERROR"), (c, r)
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "semantics.json"), "w", encoding="utf-8") as f:
    json.dump({"vars": V, "cases": [{"template": c, "expected": r} for c, r in out]}, f, ensure_ascii=False, indent=1)
    f.write("\n")
