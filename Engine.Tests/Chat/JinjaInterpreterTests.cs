using Engine.Chat.Jinja;

namespace Engine.Tests.Chat;

/// <summary>
/// Jinja semantics beyond the fixture templates. Each expected string was produced by jinja2 3.1 in transformers'
/// environment (tools/jinja-reference.py's make_env) with the variables in <see cref="VariablesJson"/>.
/// </summary>
public class JinjaInterpreterTests
{
    const string VariablesJson = "{\"xs\": [1, 2, 3, 4], \"names\": [\"b\", \"A\", \"c\"], \"msgs\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}, {\"role\": \"user\", \"content\": \"bye\"}], \"d\": {\"b\": 2, \"a\": 1}, \"s\": \"  Hello, World  \", \"n\": null, \"f\": 1.5, \"tools\": [{\"function\": {\"name\": \"f1\"}}, {\"function\": {\"name\": \"f2\"}}]}";

    static string Render(string template)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(VariablesJson);
        var variables = ((JinjaDict)JinjaValues.FromJson(doc.RootElement)!).Pairs.ToDictionary(p => (string)p.Key!, p => p.Value);
        return JinjaTemplate.Parse(template).Render(variables, () => new DateTime(2024, 7, 26));
    }

    [Theory]
    [InlineData("{% for x in xs if x is even %}{{ x }}{% endfor %}",
        "24")]
    [InlineData("{% for x in xs if x > 1 %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}",
        "1/3,2/3,3/3")]
    [InlineData("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
        "b=2;a=1;")]
    [InlineData("{{ msgs | reject('equalto', none) | map(attribute='role') | join(',') }}",
        "user,assistant,user")]
    [InlineData("{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(' ') }}",
        "hi bye")]
    [InlineData("{{ msgs | rejectattr('role', 'eq', 'user') | list | length }}",
        "1")]
    [InlineData("{{ tools | map(attribute='function.name') | list }}",
        "['f1', 'f2']")]
    [InlineData("{{ xs | first }}-{{ xs | last }}-{{ (xs | map('string') | list)[1:] }}",
        "1-4-['2', '3', '4']")]
    [InlineData("{{ missing | default('dflt') }}|{{ '' | default('empty', true) }}|{{ n | default('x') }}",
        "dflt|empty|None")]
    [InlineData("{{ 'abc' | upper }}{{ 'ABC' | lower }}{{ 'hello world' | title }}{{ 'hELLO' | capitalize }}",
        "ABCabcHello WorldHello")]
    [InlineData("{{ xs is sequence }}{{ d is sequence }}{{ 's' is sequence }}{{ 5 is sequence }}{{ missing is iterable }}",
        "TrueTrueTrueFalseTrue")]
    [InlineData("{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }} {{ greet('X', 'Hi') }}",
        "Hello, Bob! Hello, Al? Hi, X!")]
    [InlineData("{% macro fact(k) %}{{ 1 if k <= 1 else k * fact(k - 1) | int }}{% endmacro %}{{ fact(5) }}",
        "120")]
    [InlineData("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
        "13")]
    [InlineData("{% set block %}A{{ 1 + 1 }}B{% endset %}[{{ block }}]",
        "[A2B]")]
    [InlineData("{% set ns = namespace(count=0, seen=false) %}{% for m in msgs %}{% if m.role == 'user' %}{% set ns.count = ns.count + 1 %}{% endif %}{% endfor %}{{ ns.count }}",
        "2")]
    [InlineData("{{ '%s is %d years, %.2f m, %5s|%-5s|%05d %%' % ('Ann', 30, 1.756, 'r', 'l', 42) }}",
        "Ann is 30 years, 1.76 m,     r|l    |00042 %")]
    [InlineData("{{ '%(a)s-%(b)r' % {'a': 1, 'b': 'x'} }}",
        "1-'x'")]
    [InlineData("{{ 'a' ~ 1 ~ none ~ true ~ missing ~ [1] }}",
        "a1NoneTrue[1]")]
    [InlineData("{{ range(5) | list }}{{ range(1, 10, 3) | list }}{{ range(5, 0, -2) | list }}",
        "[0, 1, 2, 3, 4][1, 4, 7][5, 3, 1]")]
    [InlineData("{{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ 1 + 1.0 }} {{ true + 1 }}",
        "3.5 3 -4 1 2 1024 0.5 3.0 2.0 2")]
    [InlineData("{{ [1, 'a', 1.0, none, true, (1,), {'k': [2.5, 'q']}] }}",
        "[1, 'a', 1.0, None, True, (1,), {'k': [2.5, 'q']}]")]
    [InlineData("{{ 'it''s' }}{{ \"it's\" }}{{ ['it\\'s', \"q\\\"\"] }}",
        "itsit's[\"it's\", 'q\"']")]
    [InlineData("{{ 1e16 }} {{ 1e-5 }} {{ 123456789.125 }} {{ 0.1 + 0.2 }} {{ 1/3 }} {{ 100.0 }} {{ 2.5e-3 }}",
        "1e+16 1e-05 123456789.125 0.30000000000000004 0.3333333333333333 100.0 0.0025")]
    [InlineData("{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b  c'.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}",
        "Hello, World|Hello, World  |  Hello, World|hi|['a', 'b', '', 'c']|['a', 'b', 'c']|['a', 'b,c']|['a,b', 'c']")]
    [InlineData("{{ 'abc'.startswith('a') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'aXbX'.replace('X', '-') }}{{ 'aXbX'.replace('X', '-', 1) }}{{ 'hello'.find('l') }}{{ 'hello'.count('l') }}{{ '-'.join(['a', 'b']) }}",
        "TrueTruea-b-a-bX22a-b")]
    [InlineData("{{ '{} and {}'.format('x', 'y') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='N') }} {{ '{:>5}|{:<4}|{:^6}|{:.2f}'.format('r', 'l', 'c', 3.14159) }}",
        "x and y aba N!     r|l   |  c   |3.14")]
    [InlineData("{{ d.get('a') }}{{ d.get('z') }}{{ d.get('z', 9) }}{{ d.keys() | list }}{{ d.values() | list }}{{ d | dictsort }}",
        "1None9['b', 'a'][2, 1][('a', 1), ('b', 2)]")]
    [InlineData("{{ [3, 1, 2] | sort }}{{ names | sort }}{{ names | sort(reverse=true) }}{{ names | sort(case_sensitive=true) }}{{ msgs | sort(attribute='content') | map(attribute='content') | list }}",
        "[1, 2, 3]['A', 'b', 'c']['c', 'b', 'A']['A', 'b', 'c']['bye', 'hi', 'yo']")]
    [InlineData("{{ [1, 2, 2, 'a', 'A'] | unique | list }}{{ [3, 1, 2] | min }}{{ [3, 1, 2] | max }}{{ [1, 2, 3] | sum }}{{ 2.567 | round(1) }}{{ 2.5 | round }}{{ 3.5 | round }}{{ 2.1 | round(0, 'ceil') }}",
        "[1, 2, 'a']1362.62.04.03.0")]
    [InlineData("{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'one two  three' | wordcount }}",
        "a\n  b\n\n  c|  a\n  b|3")]
    [InlineData("{{ xs | batch(3) | list }}{{ xs | batch(3, 0) | list }}",
        "[[1, 2, 3], [4]][[1, 2, 3], [4, 0, 0]]")]
    [InlineData("{{ '42' | int }}{{ 'x' | int }}{{ '3.9' | int }}{{ 3.9 | int }}{{ '1.5' | float }}{{ -3 | abs }}{{ 5 | string }}{{ 'ab' | list }}",
        "420331.535['a', 'b']")]
    [InlineData("{{ d | tojson }}{{ d | tojson(indent=2) }}{{ {'u': '\u00e9', 'q': '\"'} | tojson }}{{ {'u': '\u00e9'} | tojson(ensure_ascii=true) }}{{ d | tojson(sort_keys=true) }}{{ [1, 2] | tojson(separators=(',', ':')) }}",
        "{\"b\": 2, \"a\": 1}{\n  \"b\": 2,\n  \"a\": 1\n}{\"u\": \"\u00e9\", \"q\": \"\\\"\"}{\"u\": \"\\u00e9\"}{\"a\": 1, \"b\": 2}[1,2]")]
    [InlineData("{{ xs[::-1] }}{{ xs[1:3] }}{{ xs[-1] }}{{ 'hello'[1:4] }}{{ 'hello'[::-1] }}{{ xs[10] is defined }}",
        "[4, 3, 2, 1][2, 3]4ellollehFalse")]
    [InlineData("{% if n is none %}N{% endif %}{% if missing is undefined %}U{% endif %}{% if f is float %}F{% endif %}{% if 3 is integer %}I{% endif %}{% if true is boolean %}B{% endif %}{% if d is mapping %}M{% endif %}{% if 3 is odd %}O{% endif %}{% if 9 is divisibleby 3 %}D{% endif %}{% if 'abc' is lower %}L{% endif %}{% if 2 is in [1, 2] %}IN{% endif %}{% if none is sameas none %}S{% endif %}",
        "NUFIBMODLINS")]
    [InlineData("{{ 1 < 2 < 3 }}{{ 1 < 3 < 2 }}{{ 'a' in 'cat' }}{{ 3 not in xs }}{{ 'a' in d }}{{ not xs }}{{ xs and 'yes' }}{{ [] or 'empty' }}",
        "TrueFalseTrueFalseTrueFalseyesempty")]
    [InlineData("{{ 'yes' if xs else 'no' }}{{ 'yes' if n }}|{{ (1, 2) }}{{ (1,) }}{{ () }}",
        "yes|(1, 2)(1,)()")]
    [InlineData("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}",
        "empty")]
    [InlineData("{% for a in [[1, 2], [3, 4]] %}{% for b in a %}{{ loop.index0 }}{{ b }}{% endfor %}{{ loop.index }};{% endfor %}",
        "01121;03142;")]
    [InlineData("{% for m in msgs %}{{ loop.previtem.role if loop.previtem is defined else '-' }}>{{ loop.nextitem.role if loop.nextitem is defined else '-' }} {{ loop.cycle('odd', 'even') }} {{ loop.revindex }} {{ loop.first }}|{% endfor %}",
        "->assistant odd 3 True|user>user even 2 False|assistant>- odd 1 False|")]
    [InlineData("{% raw %}{{ not rendered }}{% endraw %}",
        "{{ not rendered }}")]
    [InlineData("{# comment #}a  {#- trimmed -#}  b",
        "ab")]
    [InlineData("  {%- if true %}\n    x\n  {%- endif %}\ny",
        "    xy")]
    [InlineData("<{% if true %}\n  inner\n{% endif %}\n>",
        "<  inner\n>")]
    [InlineData("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = d %}{{ c.a }}",
        "121")]
    [InlineData("{% with x = 5 %}{{ x }}{% endwith %}{{ x is defined }}",
        "5False")]
    [InlineData("{% filter upper %}shout{% endfilter %}",
        "SHOUT")]
    [InlineData("{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inside{% endcall %}",
        "[inside]")]
    [InlineData("{% set x = 1 %}{% for i in range(2) %}{% set x = x + 10 %}{{ x }}{% endfor %}{{ x }}",
        "11111")]
    [InlineData("{{ msgs[0]['content'] }}{{ msgs[0].content }}{{ msgs[5] is undefined }}",
        "hihiTrue")]
    [InlineData("{{ 'H\u00e9llo w\u00f6rld' | length }}{{ 'a\u00e9' | tojson }}{{ 'x' * 3 }}{{ [0] * 3 }}",
        "11\"a\u00e9\"xxx[0, 0, 0]")]
    [InlineData("{{ dict(a=1, b='x') }}{{ namespace(a=1).a }}",
        "{'a': 1, 'b': 'x'}1")]
    [InlineData("{{ 'ab\\tc\\u00e9\\x41' }}",
        "ab\tc\u00e9A")]
    [InlineData("{{ 'a\\nb' | replace('\\n', ' ') }}{{ '  x ' | trim }}{{ 'xxaxx' | trim('x') }}",
        "a bxa")]
    [InlineData("{{ xs | select('odd') | list }}{{ xs | reject('odd') | list }}{{ [0, 1, '', 'a'] | select | list }}",
        "[1, 3][2, 4][1, 'a']")]
    [InlineData("{{ d | items | list }}{{ xs | reverse | list }}{{ 'abc' | reverse }}",
        "[('b', 2), ('a', 1)][4, 3, 2, 1]cba")]
    [InlineData("{{ 'Hello' | center(11) }}|{{ 'x' | format() }}{{ '%s-%s' | format(1, 2) }}",
        "   Hello   |x1-2")]
    [InlineData("{{ (xs | map('string') | join(', ')) }}{{ xs | join }}",
        "1, 2, 3, 41234")]
    [InlineData("{{ [[1, 'b'], [0, 'a']] | sort | first }}{{ 10 // 3 * 3 + 10 % 3 }}{{ -2 ** 2 }}{{ (-2) ** 2 }}",
        "[0, 'a']1044")]
    [InlineData("{{ xs | length > 2 }}{{ -xs | length if false else 0 }}",
        "True0")]
    [InlineData("{{ true }}{{ True }}{{ none }}{{ None }}{{ false }}",
        "TrueTrueNoneNoneFalse")]
    [InlineData("{{ [1.0, 2.50, 1e100, -0.0, 1.5e-7] }}",
        "[1.0, 2.5, 1e+100, -0.0, 1.5e-07]")]
    [InlineData("{{ 5 | float }}{{ 'x' | float }}{{ 10 | round }}{{ 10.0 | round }}",
        "5.00.01010.0")]
    [InlineData("{{ msgs | map(attribute='missing', default='?') | list }}{{ msgs | map(attribute='missing') | list | length }}",
        "['?', '?', '?']3")]
    [InlineData("{{ {'a': {'b': [1, {'c': none}]}} | tojson(indent=2) }}",
        "{\n  \"a\": {\n    \"b\": [\n      1,\n      {\n        \"c\": null\n      }\n    ]\n  }\n}")]
    [InlineData("{{ ''.join(['a', 'b']) }}{{ 'x'.join('abc') }}{{ 'abc'.upper().lower().title() }}",
        "abaxbxcAbc")]
    [InlineData("{{ 'The Quick-brown fox(the)' | title }}{{ 'the quick-brown 2nd x' .title() }}",
        "The Quick-Brown Fox(The)The Quick-Brown 2Nd X")]
    [InlineData("{{ [] | first is undefined }}{{ [] | max is undefined }}",
        "TrueTrue")]
    [InlineData("{{ msgs | groupby('role') | list | length if false else 1 }}",
        "1")]
    public void Renders_like_jinja2(string template, string expected) => Render(template).Should().Be(expected);

    [Theory]
    [InlineData("{{ 'a' + 'b' ~ 'c' }}{{ 1 + 2 ~ 3 }}{{ 'x' ~ 1 + 2 }}")]
    [InlineData("{{ 'a' + none }}")]
    [InlineData("{{ missing.attribute }}")]
    [InlineData("{{ missing['key'] }}")]
    [InlineData("{{ none.strip() }}")]
    [InlineData("{{ 1 / 0 }}")]
    [InlineData("{{ raise_exception('no') }}")]
    [InlineData("{{ d | tojson if false else missing | tojson }}")]
    [InlineData("{{ xs | map(attribute='x') | tojson }}")]
    [InlineData("{{ [1, 2] < 'a' }}")]
    [InlineData("{% for a, b in xs %}{% endfor %}")]
    public void Fails_like_jinja2(string template)
    {
        var render = () => Render(template);
        render.Should().Throw<JinjaTemplateException>();
    }

    [Theory]
    [InlineData("{% if x %}", "line 1")]
    [InlineData("{{ 1 +", "line 1")]
    [InlineData("a\n{% for x in %}", "line 2")]
    [InlineData("{% endfor %}", "line 1")]
    [InlineData("{% unknown %}", "unknown tag")]
    [InlineData("{{ 'unterminated }}", "unterminated string")]
    public void Syntax_errors_say_where(string template, string fragment)
    {
        var parse = () => JinjaTemplate.Parse(template);
        parse.Should().Throw<JinjaTemplateException>().Which.Message.Should().Contain(fragment);
    }

    [Fact]
    public void Unknown_filters_fail_when_compiled_except_inside_an_if_as_in_jinja2()
    {
        var parse = () => JinjaTemplate.Parse("{% for x in xs %}{{ x | from_json }}{% endfor %}");
        parse.Should().Throw<JinjaTemplateException>().WithMessage("no filter named 'from_json' (line 1, column 25)");
        Render("{% if false %}{{ x | from_json }}{% endif %}ok").Should().Be("ok");
        Render("{{ 1 if true else x | from_json }}").Should().Be("1");
        Render("{% if 'from_json' is filter %}{{ x | from_json }}{% else %}none{% endif %}").Should().Be("none");
        var run = () => Render("{% if true %}{{ 1 | from_json }}{% endif %}");
        run.Should().Throw<JinjaTemplateException>().WithMessage("*no filter named 'from_json'*");
    }

    [Fact]
    public void Raise_exception_keeps_the_templates_message()
    {
        var render = () => Render("{{ raise_exception('Conversation roles must alternate') }}");
        render.Should().Throw<JinjaTemplateException>().WithMessage("Conversation roles must alternate");
    }

    [Fact]
    public void Strftime_now_uses_the_given_clock_and_C_locale_names()
    {
        Render("{{ strftime_now('%d %b %Y|%B %A %a|%Y-%m-%d %H:%M:%S|%-d %j') }}")
            .Should().Be("26 Jul 2024|July Friday Fri|2024-07-26 00:00:00|26 208");
    }

    [Fact]
    public void Json_input_keeps_key_order_and_int_versus_float()
    {
        using var doc = System.Text.Json.JsonDocument.Parse("""{"z": 1, "a": 1.0, "m": [2, 2.5e0, -0]}""");
        var value = JinjaValues.FromJson(doc.RootElement);
        var template = JinjaTemplate.Parse("{{ v }}|{{ v | tojson }}");
        template.Render(new Dictionary<string, object?> { ["v"] = value }).Should()
            .Be("{'z': 1, 'a': 1.0, 'm': [2, 2.5, 0]}|{\"z\": 1, \"a\": 1.0, \"m\": [2, 2.5, 0]}");
    }

    [Fact]
    public void Whitespace_control_matches_transformers_settings()
    {
        // trim_blocks drops the newline after a block tag, lstrip_blocks the indentation before it, and the
        // template's one trailing newline is dropped (keep_trailing_newline=False).
        Render("{% for x in xs %}\n    {{ x }}\n{% endfor %}\n").Should().Be("    1\n    2\n    3\n    4\n");
        Render("a {{- ' b ' -}} c").Should().Be("a b c");
        Render("  {%+ if true %}x{% endif %}").Should().Be("  x");
        Render("{% if true +%}\nx{% endif %}").Should().Be("\nx");
        Render("a\r\nb").Should().Be("a\nb");
    }
}
