using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Tests.Support;

namespace Engine.Tests.Chat;

/// <summary>A fact that needs ../shared and Python with jinja2 (tools/jinja-reference.py); skipped with the reason
/// when either is missing.</summary>
public sealed class PythonJinjaFactAttribute : FactAttribute
{
    static readonly Lazy<string?> Missing = new(() =>
    {
        if (TestPaths.SharedDir is null) return TestPaths.SharedMissing;
        try
        {
            var psi = new ProcessStartInfo("python3", ["-c", "import jinja2"]) { RedirectStandardError = true, UseShellExecute = false };
            using var p = Process.Start(psi)!;
            p.StandardError.ReadToEnd();
            if (!p.WaitForExit(30_000)) { p.Kill(); return "python3 -c 'import jinja2' did not finish"; }
            return p.ExitCode == 0 ? null : "python3 has no jinja2 (apt-get install python3-jinja2)";
        }
        catch (System.ComponentModel.Win32Exception) { return "python3 is not installed"; }
    });

    public PythonJinjaFactAttribute()
    {
        if (Missing.Value is string reason) Skip = reason;
    }
}

/// <summary>
/// Cross-check against the real jinja2: every llama.cpp template (Engine.Tests/TestData/llama-cpp-templates) on every
/// fixture conversation, rendered by tools/jinja-reference.py in transformers' environment and by the engine. They
/// must agree exactly, or both fail. All cases go to one Python process.
/// </summary>
public class JinjaReferenceTests
{
    /// <summary>Templates whose renders may differ, and why. Keep short: each entry is a gap in the interpreter.</summary>
    static readonly Dictionary<string, string> KnownDifferences = new(StringComparer.Ordinal);

    [PythonJinjaFact]
    public void Llama_cpp_templates_render_like_jinja2()
    {
        var templates = Directory.GetFiles(TestPaths.Repo("Engine.Tests", "TestData", "llama-cpp-templates"), "*.jinja").Order().ToArray();
        templates.Should().HaveCountGreaterThan(60);
        var requests = new JsonArray();
        var pairs = new List<(string Template, JsonElement Case)>();
        foreach (var path in templates)
            foreach (var c in JinjaCases.Cases)
            {
                var request = new JsonObject { ["template_file"] = path };
                foreach (var field in new[] { "messages", "tools", "bos_token", "eos_token", "now", "kwargs" })
                    if (c.TryGetProperty(field, out var value)) request[field] = JsonNode.Parse(value.GetRawText());
                requests.Add(request);
                pairs.Add((path, c));
            }

        var reference = RunReference(requests.ToJsonString());
        reference.Should().HaveCount(pairs.Count);

        var failures = new List<string>();
        int agreed = 0;
        for (int i = 0; i < pairs.Count; i++)
        {
            var (path, c) = pairs[i];
            var name = Path.GetFileNameWithoutExtension(path);
            var (output, error) = JinjaCases.Render(c, File.ReadAllText(path));
            var expected = reference[i];
            string? problem = null;
            if (expected.TryGetProperty("error", out var refError))
            {
                if (error is null) problem = $"jinja2 failed ({refError.GetString()}) but the engine rendered";
            }
            else
            {
                var refOutput = expected.GetProperty("output").GetString()!;
                if (error is not null) problem = $"the engine failed ({error}) but jinja2 rendered";
                else if (output != refOutput) problem = "renders differ: " + FirstDifference(refOutput, output!);
            }
            if (problem is null) { agreed++; continue; }
            if (KnownDifferences.ContainsKey(name)) continue;
            failures.Add($"{name} × {c.GetProperty("id").GetString()}: {problem}");
        }
        Console.WriteLine($"llama.cpp templates: {agreed}/{pairs.Count} renders agree with jinja2");
        // One line per template (how many conversations differ, and the first), so a gap is readable at a glance.
        var summary = failures.GroupBy(f => f[..f.IndexOf(" × ", StringComparison.Ordinal)])
            .Select(g => $"{g.Key}: {g.Count()} differ, e.g. {g.First()}");
        failures.Should().BeEmpty($"{agreed}/{pairs.Count} agree; the rest:\n" + string.Join("\n", summary));
    }

    /// <summary>The conversation the small templates render: system, user, an assistant turn with reasoning and a tool
    /// call, and a tool result.</summary>
    const string SmallTemplateCase = """
        {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "héllo\nworld"},
          {"role": "assistant", "content": "<think>r</think>ans", "tool_calls": [{"type": "function",
            "function": {"name": "f", "arguments": {"a": 1, "b": [1.5, null, true]}}}]}, {"role": "tool", "content": "42"}],
         "tools": [{"type": "function", "function": {"name": "f", "description": "d",
           "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}],
         "bos_token": "<s>", "eos_token": "</s>", "now": "2024-07-26T00:00:00", "kwargs": {"add_generation_prompt": true}}
        """;

    /// <summary>Engine.Tests/TestData/jinja-semantics/templates.txt: statements, whitespace control, filters, tests,
    /// methods, formatting, Undefined and error cases, each compared with jinja2.</summary>
    [PythonJinjaFact]
    public void Small_templates_render_like_jinja2()
    {
        var text = File.ReadAllText(TestPaths.Repo("Engine.Tests", "TestData", "jinja-semantics", "templates.txt")).ReplaceLineEndings("\n");
        var templates = text.Split("\n====\n");
        using var caseDoc = JsonDocument.Parse(SmallTemplateCase);
        var requests = new JsonArray();
        foreach (var template in templates)
        {
            var request = JsonNode.Parse(SmallTemplateCase)!.AsObject();
            request["template"] = template;
            requests.Add(request);
        }
        var reference = RunReference(requests.ToJsonString());
        var failures = new List<string>();
        for (int i = 0; i < templates.Length; i++)
        {
            var (output, error) = JinjaCases.Render(caseDoc.RootElement, templates[i]);
            if (reference[i].TryGetProperty("error", out var refError))
            {
                if (error is null) failures.Add($"#{i} {templates[i]}\n  jinja2 failed ({refError.GetString()}), the engine rendered {output}");
            }
            else if (error is not null) failures.Add($"#{i} {templates[i]}\n  the engine failed ({error})");
            else if (output != reference[i].GetProperty("output").GetString())
                failures.Add($"#{i} {templates[i]}\n  " + FirstDifference(reference[i].GetProperty("output").GetString()!, output!));
        }
        failures.Should().BeEmpty($"of {templates.Length} templates these differ:\n" + string.Join("\n", failures));
    }

    static string FirstDifference(string expected, string actual)
    {
        int at = 0;
        while (at < Math.Min(expected.Length, actual.Length) && expected[at] == actual[at]) at++;
        string Around(string s) => s.Substring(Math.Max(0, at - 30), Math.Min(s.Length, at + 30) - Math.Max(0, at - 30)).Replace("\n", "\\n");
        return $"at {at}: jinja2 …{Around(expected)}… engine …{Around(actual)}…";
    }

    static JsonElement[] RunReference(string input)
    {
        var psi = new ProcessStartInfo("python3", [TestPaths.Repo("tools", "jinja-reference.py")])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            StandardInputEncoding = new UTF8Encoding(false), StandardOutputEncoding = Encoding.UTF8,
        };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.StandardInput.Write(input);
        p.StandardInput.Close();
        if (!p.WaitForExit(300_000)) { p.Kill(true); throw new TimeoutException("tools/jinja-reference.py did not finish in 300 s"); }
        if (p.ExitCode != 0) throw new InvalidOperationException("tools/jinja-reference.py failed: " + stderr.Result);
        using var doc = JsonDocument.Parse(stdout.Result);
        return [.. doc.RootElement.EnumerateArray().Select(e => e.Clone())];
    }
}
