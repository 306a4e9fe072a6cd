using System.Diagnostics;
using Engine.Chat.Jinja;

namespace Engine.Tests.Chat;

/// <summary>Hostile templates: each must stop with a <see cref="JinjaTemplateException"/>, quickly and without using
/// unbounded memory. Limits: <see cref="JinjaLimits"/>. Timed, so the class runs alone (not beside model tests).</summary>
[Collection(JinjaTimingCollection.Name)]
public class JinjaSandboxTests
{
    static readonly TimeSpan Quickly = TimeSpan.FromSeconds(5);

    static JinjaTemplateException Refuses(string template, Dictionary<string, object?>? variables = null)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var render = () => JinjaTemplate.Parse(template).Render(variables ?? new Dictionary<string, object?> { ["x"] = new JinjaList([1L]) });
        var error = render.Should().Throw<JinjaTemplateException>().Which;
        // The work done, not the wall clock alone: on a machine busy with other processes the wall clock runs on while
        // this one waits, but runaway work would spend this process's processor time too.
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
        (clock.Elapsed < cpu ? clock.Elapsed : cpu).Should().BeLessThan(Quickly, $"wall clock {clock.Elapsed.TotalSeconds:F1} s, processor time {cpu.TotalSeconds:F1} s");
        (GC.GetAllocatedBytesForCurrentThread() - before).Should().BeLessThan(2L << 30, "a render allocates at most a few output-sized buffers at a time");
        return error;
    }

    [Theory]
    [InlineData("{% for x in range(10**9) %}{{ x }}{% endfor %}", "Range too big")]
    [InlineData("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "evaluation steps")]
    [InlineData("{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}", "")]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion")]
    [InlineData("{% macro f() %}{% for x in [1] recursive %}{{ f() }}{% endfor %}{% endmacro %}{{ f() }}", "recursion")]
    [InlineData("{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}", "recursion")]
    [InlineData("{{ 'x' * 10**9 }}", "limit")]
    [InlineData("{{ [1] * 10**9 }}", "limit")]
    [InlineData("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "limit")]
    [InlineData("{{ ('x' * 1000000).replace('x', 'yyyyyyyyyyyyyyyyyyyyyyyyyy') }}", "")]
    [InlineData("{% macro twice(s, n) %}{{ s if n == 0 else twice(s ~ s, n - 1) }}{% endmacro %}{{ twice('x', 40) }}", "limit")]
    [InlineData("{{ 2 ** 100000 }}", "larger than")]
    [InlineData("{% set ns = namespace(n=3) %}{% for i in range(100) %}{% set ns.n = ns.n * ns.n %}{% endfor %}", "larger than")]
    [InlineData("{{ ('x\n' * 1000000) | indent(1000) }}", "limit")]
    [InlineData("{{ [1] | batch(10**18, 0) | list }}", "limit")]
    [InlineData("{{ 'x'.ljust(10**18) }}", "limit")]
    [InlineData("{% for i in range(100000) %}{{ 'x'.center(8000000) | length }}{% endfor %}", "steps")]
    [InlineData("{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(5000) %}{% set ns.a = [ns.a] %}{% set ns.b = [ns.b] %}{% endfor %}{{ ns.a == ns.b }}", "recursion")]
    [InlineData("{% set ns = namespace(a=[1]) %}{% for i in range(5000) %}{% set ns.a = [ns.a] %}{% endfor %}{{ ns.a }}", "nested")]
    [InlineData("{% set ns = namespace(t=1) %}{% for i in range(5000) %}{% set ns.t = (ns.t,) %}{% endfor %}{{ {ns.t: 1} }}", "unhashable")]
    // Lists that share their items: 2^60 leaves in 60 small objects.
    [InlineData("{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}", "steps")]
    [InlineData("{% set ns = namespace(a=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ ns.a }}", "")]
    [InlineData("{% set ns = namespace(a=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ ns.a | tojson }}", "")]
    public void Runaway_work_is_stopped(string template, string messageFragment)
    {
        var error = Refuses(template);
        if (messageFragment.Length > 0) error.Message.Should().Contain(messageFragment);
    }

    [Theory]
    [InlineData("{{ ''.__class__ }}")]
    [InlineData("{{ ''.__class__.__mro__[1].__subclasses__() }}")]
    [InlineData("{{ x.__dict__ }}")]
    [InlineData("{{ x._private }}")]
    [InlineData("{{ cycler.__init__.__globals__ }}")]
    [InlineData("{{ range.__globals__ }}")]
    [InlineData("{{ namespace().__init__ }}")]
    [InlineData("{{ x['__class__'] }}")]
    [InlineData("{{ (x|attr('__class__')) }}")]
    [InlineData("{% set ns = namespace() %}{% set ns.__class__ = 1 %}")]
    public void Internals_are_unreachable(string template)
    {
        Refuses(template);
    }

    [Theory]
    [InlineData("{{ x.append(2) }}")]
    [InlineData("{{ x.pop() }}")]
    [InlineData("{{ x.extend([3]) }}")]
    [InlineData("{{ x.clear() }}")]
    [InlineData("{{ {'a': 1}.update({'b': 2}) }}")]
    [InlineData("{{ {'a': 1}.pop('a') }}")]
    [InlineData("{{ {'a': 1}.setdefault('b', 2) }}")]
    public void Mutating_methods_are_refused_like_the_immutable_sandbox(string template)
    {
        Refuses(template).Message.Should().Contain("unsafe");
    }

    [Fact]
    public void Deeply_nested_source_is_a_syntax_error_not_a_stack_overflow()
    {
        Refuses(new string('(', 5000) + "1" + new string(')', 5000) is var e ? "{{ " + e + " }}" : "");
        Refuses(string.Concat(Enumerable.Repeat("{% if true %}", 5000)));
        Refuses("{{ " + string.Concat(Enumerable.Repeat("not ", 5000)) + "x }}");
        Refuses("{{ " + string.Concat(Enumerable.Repeat("[", 5000)) + " }}");
    }

    [Fact]
    public void Repeating_an_empty_string_or_list_a_huge_number_of_times_is_instant()
    {
        var clock = Stopwatch.StartNew();
        JinjaTemplate.Parse("{{ '' * 10**18 }}{{ ([] * 10**18) | length }}").Render(new Dictionary<string, object?>()).Should().Be("0");
        clock.Elapsed.Should().BeLessThan(Quickly);
    }

    [Fact]
    public void A_pattern_filter_on_a_pathological_string_ends_quickly()
    {
        var clock = Stopwatch.StartNew();
        try { JinjaTemplate.Parse("{{ ('<!--' * 100000) | striptags | length }}").Render(new Dictionary<string, object?>()); }
        catch (JinjaTemplateException e) { e.Message.Should().Contain("took too long"); }
        clock.Elapsed.Should().BeLessThan(Quickly);
    }

    [Fact]
    public void Limits_are_configurable()
    {
        var template = JinjaTemplate.Parse("{% for i in range(1000) %}{{ i }}{% endfor %}");
        var empty = new Dictionary<string, object?>();
        var tight = () => template.Render(empty, limits: new JinjaLimits { MaxSteps = 500 });
        tight.Should().Throw<JinjaTemplateException>().WithMessage("*500 evaluation steps*");
        var small = () => template.Render(empty, limits: new JinjaLimits { MaxOutputLength = 100 });
        small.Should().Throw<JinjaTemplateException>().WithMessage("*exceeds 100 characters*");
        template.Render(empty).Should().HaveLength(2890);
    }

    /// <summary>Damaged real templates (cut short, a character dropped or doubled, fixed seed) either render or fail
    /// with the template error: nothing else escapes, nothing hangs.</summary>
    [Fact]
    public void Damaged_templates_fail_cleanly()
    {
        var random = new Random(20240726);
        var messages = JinjaValues.FromJson(System.Text.Json.JsonDocument.Parse(
            """[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]""").RootElement);
        var variables = new Dictionary<string, object?> { ["messages"] = messages, ["add_generation_prompt"] = true, ["bos_token"] = "<s>" };
        var clock = Stopwatch.StartNew();
        foreach (var path in Directory.GetFiles(Engine.Tests.Support.TestPaths.Repo("Engine.Tests", "TestData", "llama-cpp-templates"), "*.jinja").Order())
        {
            var source = File.ReadAllText(path);
            for (int i = 0; i < 20; i++)
            {
                int at = random.Next(source.Length);
                var damaged = (i % 3) switch
                {
                    0 => source[..at],
                    1 => source.Remove(at, 1),
                    _ => source.Insert(at, source[at].ToString()),
                };
                try { JinjaTemplate.Parse(damaged).Render(variables); }
                catch (JinjaTemplateException) { }
            }
        }
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(60));
    }

    [Fact]
    public void Only_template_values_can_be_passed_in()
    {
        var pass = () => JinjaValues.FromObject(new Dictionary<string, object?> { ["process"] = Process.GetCurrentProcess() });
        pass.Should().Throw<JinjaTemplateException>();
    }
}

/// <summary>Runs the timed sandbox tests without other tests competing for the CPU.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class JinjaTimingCollection
{
    public const string Name = "Jinja timing";
}
